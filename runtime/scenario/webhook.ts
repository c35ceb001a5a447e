import { durationSeconds } from '../durations.js';
import type { WebhookDeclareTicket, WebhookRequest } from './model.js';

/*
 * A scenario's webhook (capensis/canopsis release-22.10,
 * lib/canopsis/types/webhook.go; lib/canopsis/action retry_count and
 * retry_delay): the body rendered from a Handlebars template with the alarm,
 * the entity and the event; TLS verified unless skip_verify; a timeout; a
 * network error or a 5xx is retried retry_count times, a 4xx is not; the
 * ticket number read from the JSON response when declare_ticket says where.
 * Canopsis waits retry_delay between attempts; here the wait doubles after
 * each failure (retry_delay, 2x, 4x... at most a minute, or retry_delay if
 * longer), so a receiver that is down is not hammered and one that is
 * briefly busy is retried soon.
 */

export class WebhookFailed extends Error {}

export interface WebhookCall {
  request: WebhookRequest;
  declareTicket?: WebhookDeclareTicket;
  retryCount: number;
  /** Seconds before the first retry; doubled for each next one (see backoff). */
  retryDelay: number;
  data: { alarm: unknown; entity: unknown; event: unknown };
  /** Waits between attempts (tests pass their own). */
  sleep?: (ms: number) => Promise<void>;
}

export interface WebhookResult {
  status: number;
  attempts: number;
  ticket?: string;
  ticketData?: Record<string, string>;
}

const DEFAULT_TIMEOUT = 30;
/** Seconds a doubled wait does not exceed (unless retry_delay itself is longer). */
const MAX_BACKOFF = 60;

/** Seconds to wait before retry number `n` (1: the first retry). */
export const backoff = (retryDelay: number, n: number) => Math.min(retryDelay * 2 ** (n - 1), Math.max(retryDelay, MAX_BACKOFF));

type Handlebars = typeof import('handlebars');

const render = (hb: Handlebars, template: string, data: unknown, what: string) => {
  try {
    return hb.compile(template, { noEscape: true, strict: false })(data);
  } catch (e) {
    throw new WebhookFailed(`the ${what} template does not render: ${(e as Error).message}`);
  }
};

/** A value at a dotted path of a JSON document ("result.number"), as a string. */
function at(doc: unknown, path: string): string | undefined {
  let v: unknown = doc;
  for (const p of path.split('.')) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[p] : undefined;
  return v === undefined || v === null ? undefined : typeof v === 'string' ? v : JSON.stringify(v);
}

export async function callWebhook(c: WebhookCall): Promise<WebhookResult> {
  // Loaded by the first webhook: an action engine without one does not hold an HTTP client and a template compiler.
  const [{ default: hb }, { Agent, request }] = await Promise.all([import('handlebars'), import('undici')]);
  const sleep = c.sleep ?? ((ms: number) => new Promise((r) => setTimeout(r, ms)));
  const url = render(hb, c.request.url, c.data, 'url');
  const body = c.request.payload ? render(hb, c.request.payload, c.data, 'payload') : undefined;
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(c.request.headers ?? {})) headers[k] = render(hb, v, c.data, `header ${k}`);
  if (c.request.auth)
    headers.authorization = `Basic ${Buffer.from(`${c.request.auth.username}:${c.request.auth.password}`).toString('base64')}`;
  const timeoutMs = (c.request.timeout ? durationSeconds(c.request.timeout) : DEFAULT_TIMEOUT) * 1000;
  const dispatcher = new Agent({
    connect: { rejectUnauthorized: !c.request.skip_verify },
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
  let last = '';
  const waits: number[] = [];
  try {
    for (let attempt = 1; attempt <= 1 + c.retryCount; attempt++) {
      if (attempt > 1) {
        waits.push(backoff(c.retryDelay, attempt - 1));
        await sleep(waits.at(-1)! * 1000);
      }
      let status: number;
      let text: string;
      try {
        const r = await request(url, {
          method: c.request.method.toUpperCase() as 'POST',
          headers,
          body,
          dispatcher,
          signal: AbortSignal.timeout(timeoutMs),
        });
        status = r.statusCode;
        text = await r.body.text();
      } catch (e) {
        const cause = (e as { cause?: Error }).cause;
        last = `${c.request.method.toUpperCase()} ${url}: ${(e as Error).message}${cause ? ` (${cause.message})` : ''}`;
        continue;
      }
      if (status >= 500) {
        last = `${c.request.method.toUpperCase()} ${url} answered ${status}`;
        continue;
      }
      if (status >= 400)
        throw new WebhookFailed(`${c.request.method.toUpperCase()} ${url} answered ${status} (not retried): ${text.slice(0, 200)}`);
      const result: WebhookResult = { status, attempts: attempt };
      const dt = c.declareTicket;
      if (dt?.ticket_id) {
        if (text.trim() === '' && dt.empty_response) return result;
        let doc: unknown;
        try {
          doc = JSON.parse(text);
        } catch {
          throw new WebhookFailed(`${url} answered ${status} but not JSON, so no ticket could be read from ${dt.ticket_id}`);
        }
        const ticket = at(doc, dt.ticket_id);
        if (ticket === undefined) throw new WebhookFailed(`${url} answered ${status} with no ${dt.ticket_id} in its JSON`);
        result.ticket = ticket;
      }
      return result;
    }
    throw new WebhookFailed(`${last}; ${1 + c.retryCount} attempt(s)${waits.length ? `, waiting ${waits.join(', ')} s between them` : ''}`);
  } finally {
    await dispatcher.close();
  }
}
