import type { Channel, ConfirmChannel, GetMessage } from 'amqplib';
import { deadQueue } from './topology.js';

/*
 * Reading and replaying an engine's dead-letter queue. Messages are taken
 * with basic.get and stay unacked while we look; closing the channel puts
 * back every one we did not settle, in order, so looking loses nothing.
 */

export interface DeadLetter {
  index: number;
  reason: string;
  engine: string;
  deadAt: string;
  queue: string;
  routingKey: string;
  body: Buffer;
  headers: Record<string, unknown>;
  message: GetMessage;
}

const str = (v: unknown) => (v === undefined || v === null ? '' : Buffer.isBuffer(v) ? v.toString() : String(v));

/** Up to `limit` dead letters of a queue, unacked on `ch` (close or settle them). */
export async function peek(ch: Channel, engineQueueName: string, limit: number): Promise<DeadLetter[]> {
  const out: DeadLetter[] = [];
  const q = deadQueue(engineQueueName);
  while (out.length < limit) {
    const m = await ch.get(q, { noAck: false });
    if (!m) break;
    const h = (m.properties.headers ?? {}) as Record<string, unknown>;
    out.push({
      index: out.length + 1,
      reason: str(h['x-canopsis-reason']) || str((h['x-death'] as Array<{ reason?: string }> | undefined)?.[0]?.reason) || 'unknown',
      engine: str(h['x-canopsis-engine']),
      deadAt: str(h['x-canopsis-dead-at']),
      queue: str(h['x-canopsis-queue']) || engineQueueName,
      routingKey: str(h['x-canopsis-routing-key']),
      body: m.content,
      headers: h,
      message: m,
    });
  }
  return out;
}

export function reasonsOf(letters: DeadLetter[]): Array<{ reason: string; count: number }> {
  const counts = new Map<string, number>();
  for (const l of letters) counts.set(l.reason, (counts.get(l.reason) ?? 0) + 1);
  return [...counts].map(([reason, count]) => ({ reason, count })).sort((a, b) => b.count - a.count);
}

export interface ReplayFilter {
  reason?: RegExp;
  /** Exactly this reason. */
  reasonIs?: string;
  /** field=value pairs the event body must match (string comparison). */
  where?: Array<[string, string]>;
}

export function matches(l: DeadLetter, f: ReplayFilter): boolean {
  if (f.reason && !f.reason.test(l.reason)) return false;
  if (f.reasonIs !== undefined && l.reason !== f.reasonIs) return false;
  if (f.where?.length) {
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(l.body.toString('utf8')) as Record<string, unknown>;
    } catch {
      return false;
    }
    if (!f.where.every(([k, v]) => String(body[k]) === v)) return false;
  }
  return true;
}

/** Headers of a replayed message: ours removed, a replay count added. */
export function replayHeaders(h: Record<string, unknown>): Record<string, unknown> {
  const out = Object.fromEntries(Object.entries(h).filter(([k]) => !k.startsWith('x-canopsis-') && k !== 'x-death'));
  return { ...out, 'x-canopsis-replayed': Number(h['x-canopsis-replayed'] ?? 0) + 1 };
}

/**
 * Puts the dead letters of an engine that match back into its queue: the
 * copies are confirmed before the letters are removed, so a fault between
 * the two replays an event twice (at least once) and never loses one.
 */
export async function replayLetters(
  ch: ConfirmChannel,
  engineQueueName: string,
  filter: ReplayFilter,
  limit: number,
): Promise<{ replayed: number; kept: number }> {
  const letters = await peek(ch, engineQueueName, limit);
  const chosen = letters.filter((l) => matches(l, filter));
  for (const l of chosen)
    ch.publish('', l.queue, l.body, { persistent: true, contentType: 'application/json', headers: replayHeaders(l.headers) });
  await ch.waitForConfirms();
  for (const l of chosen) ch.ack(l.message);
  return { replayed: chosen.length, kept: letters.length - chosen.length };
}
