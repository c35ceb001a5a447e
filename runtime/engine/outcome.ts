import { DROP, type Event, type EventOutcome, RejectedEvent, type Routed } from '../tasks/types.js';

/*
 * What event_processing returned, turned into messages to publish: a pure
 * function, so the rules (drop, pass on, fan out, route) are tested alone.
 */

export interface Output {
  /** Engines to send to; empty at the end of the chain. */
  engines: string[] | undefined;
  event: Event;
}

const isEvent = (v: unknown): v is Event => v !== null && typeof v === 'object' && !Array.isArray(v);
const isRouted = (v: unknown): v is Routed =>
  isEvent(v) && Array.isArray((v as unknown as Routed).route) && isEvent((v as unknown as Routed).event);

/** `engines: undefined` means "the configured next engines (or -publishQueue)". */
export function outputsOf(outcome: EventOutcome | unknown): Output[] {
  if (outcome === DROP) return [];
  const one = (v: unknown): Output => {
    if (isRouted(v)) return { engines: [...v.route], event: v.event };
    if (isEvent(v)) return { engines: undefined, event: v };
    throw new RejectedEvent(
      `the task returned ${v === undefined ? 'nothing' : JSON.stringify(v)?.slice(0, 80)}; expected the event, a list of events, or DROP`,
    );
  };
  return Array.isArray(outcome) ? outcome.map(one) : [one(outcome)];
}
