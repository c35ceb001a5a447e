/*
 * What a dead letter carries besides the event: the reason and where it
 * was refused, as headers beside those it came with (`dead-letters` lists
 * and replays by them).
 */

export interface DeadLetterOrigin {
  engine: string;
  worker: number;
  /** The queue the event goes back to on replay. */
  home: string;
  exchange: string;
  routingKey: string;
}

export function deadLetterHeaders(
  original: Record<string, unknown> | undefined,
  reason: string,
  from: DeadLetterOrigin,
  at = new Date(),
): Record<string, unknown> {
  return {
    ...(original ?? {}),
    'x-canopsis-reason': reason,
    'x-canopsis-engine': from.engine,
    'x-canopsis-worker': from.worker,
    'x-canopsis-dead-at': at.toISOString(),
    'x-canopsis-exchange': from.exchange,
    'x-canopsis-routing-key': from.routingKey,
    'x-canopsis-queue': from.home,
  };
}
