import type { FastifyInstance } from 'fastify';
import type { StoredAlarm } from '../alarm/model.js';
import { ALARMS } from '../engines/axe.js';
import type { Store } from '../store/types.js';

/*
 * Live alarms for the console: GET /api/v4/stream/alarms is a stream of
 * server-sent events, one `alarms` event naming the alarms axe wrote since
 * the previous one. One poller serves every open stream: it reads what axe
 * stamped (timing.written, indexed) after the last time it looked, once a
 * second, and only while a stream is open. The console then reads the page
 * it shows through the ordinary API, so what it shows is always what
 * GET /api/v4/alarms answers.
 */

export const STREAM_ROUTE = '/api/v4/stream/alarms';
const POLL_MS = 1000;
const KEEPALIVE_MS = 15_000;
/** Ids sent per event at most; more changed than that: the console reloads its page anyway. */
const MAX_IDS = 200;
/** How far back each poll reads again (a write committed late). */
const OVERLAP_MS = 2000;

export class AlarmFeed {
  private readonly listeners = new Set<(ids: string[]) => void>();
  private timer: NodeJS.Timeout | undefined;
  private since = Date.now();
  /** `key@written` of what was told in the overlap window. */
  private readonly told = new Map<string, number>();
  private polling = false;

  constructor(
    private readonly store: Store,
    private readonly onError: (e: Error) => void,
    private readonly pollMs = POLL_MS,
  ) {}

  subscribe(fn: (ids: string[]) => void): () => void {
    this.listeners.add(fn);
    if (!this.timer) {
      this.since = Date.now();
      this.timer = setInterval(() => void this.poll(), this.pollMs);
    }
    return () => {
      this.listeners.delete(fn);
      if (this.listeners.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    };
  }

  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      // axe stamps a write before it commits, and several axe processes write at once: a write stamped
      // just before `since` may show only now. The last seconds are read again; what was told is not told twice.
      const changed = await this.store
        .collection<StoredAlarm>(ALARMS)
        // Newest first: past MAX_IDS changes in one poll, the newest are named (the console reloads its page whatever the ids).
        .find({ 'timing.written': { $gt: this.since - OVERLAP_MS } }, { sort: [['timing.written', -1]], limit: MAX_IDS });
      const fresh = changed.filter((a) => !this.told.has(`${a.key}@${a.timing.written}`));
      if (changed.length) this.since = Math.max(this.since, ...changed.map((a) => a.timing.written ?? 0));
      for (const a of fresh) this.told.set(`${a.key}@${a.timing.written}`, a.timing.written ?? 0);
      for (const [k, w] of this.told) if (w <= this.since - OVERLAP_MS) this.told.delete(k);
      if (fresh.length === 0) return;
      const ids = fresh.map((a) => a.key);
      for (const fn of this.listeners) fn(ids);
    } catch (e) {
      this.onError(e as Error);
    } finally {
      this.polling = false;
    }
  }
}

export function liveRoutes(app: FastifyInstance, store: Store): void {
  const feed = new AlarmFeed(store, (e) => app.log.warn({ err: e.message }, 'live alarms: the store did not answer'));
  const open = new Set<() => void>();
  // preClose, not onClose: Fastify runs onClose after in-flight requests end, and an open stream never does.
  app.addHook('preClose', async () => {
    for (const end of [...open]) end();
  });
  app.get(STREAM_ROUTE, (req, reply) => {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write('retry: 3000\n\n');
    const unsubscribe = feed.subscribe((ids) => res.write(`event: alarms\ndata: ${JSON.stringify({ ids })}\n\n`));
    const keepalive = setInterval(() => res.write(': keepalive\n\n'), KEEPALIVE_MS);
    // A stream opened with a login token ends when the token does: the console then finds its session over.
    const expires = req.principal?.expires;
    const expiry = expires ? setTimeout(() => end(), Math.max(0, Math.min(expires * 1000 - Date.now(), 2 ** 31 - 1))) : undefined;
    const end = () => {
      clearInterval(keepalive);
      clearTimeout(expiry);
      unsubscribe();
      open.delete(end);
      res.end();
    };
    open.add(end);
    req.raw.on('close', end);
  });
}
