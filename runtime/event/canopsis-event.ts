import type { Event } from '../tasks/types.js';

/*
 * The Canopsis event format (shared/notes/canopsis-events.md): what the
 * cleaner and the REST API accept, and how an event is normalised.
 */

export const EVENT_TYPES = [
  'check',
  'perf',
  'log',
  'ack',
  'ackremove',
  'cancel',
  'uncancel',
  'comment',
  'changestate',
  'snooze',
  'unsnooze',
  'declareticket',
  'declareticketwebhook',
  'assocticket',
  'activate',
] as const;
/** Canopsis' source types an event from outside may carry (types.Event.IsValid; metaalarm is internal). */
export const SOURCE_TYPES = ['connector', 'component', 'resource', 'service'] as const;

/** Canopsis' MaxEventTimestampVariation: a timestamp further than this from now is replaced by now (types.Event.Format). */
export const MAX_TIMESTAMP_DRIFT = 24 * 3600;

/** Events larger than this are refused (RabbitMQ and Canopsis' store both hate huge documents). */
export const MAX_EVENT_BYTES = 1024 * 1024;
/**
 * Arrays and objects nested deeper than this are refused. JSON.parse takes
 * any depth, but JSON.stringify, structuredClone and every recursive walk
 * throw RangeError (call stack) somewhere past a few thousand levels, so a
 * deep body would fail wherever it goes next. Canopsis events nest 3 deep.
 */
export const MAX_EVENT_DEPTH = 64;
/** AMQP short string limit. */
export const MAX_ROUTING_KEY = 255;

export type Checked = { ok: true; event: Event } | { ok: false; reason: string };

const REQUIRED = ['connector', 'connector_name', 'event_type', 'source_type'] as const;

const isText = (v: unknown): v is string => typeof v === 'string' && v.trim() !== '';

/**
 * Validates and normalises one event: required fields present, known types,
 * state an integer 0..3 where it matters, timestamp set when missing.
 * Unknown fields are kept. Never throws.
 */
export function checkEvent(input: unknown, now: () => number = () => Math.floor(Date.now() / 1000)): Checked {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    return {
      ok: false,
      reason: `not an event object (found ${Array.isArray(input) ? 'an array' : input === null ? 'null' : typeof input})`,
    };
  }
  const e = input as Event;
  const missing = REQUIRED.filter((k) => !isText(e[k]));
  if (missing.length) return { ok: false, reason: `missing or empty field${missing.length > 1 ? 's' : ''}: ${missing.join(', ')}` };
  if (!(EVENT_TYPES as readonly string[]).includes(e.event_type as string)) {
    return { ok: false, reason: `unknown event_type "${String(e.event_type)}" (known: ${EVENT_TYPES.join(', ')})` };
  }
  if (!(SOURCE_TYPES as readonly string[]).includes(e.source_type as string)) {
    return { ok: false, reason: `unknown source_type "${String(e.source_type)}" (known: ${SOURCE_TYPES.join(', ')})` };
  }
  if (e.source_type !== 'connector' && !isText(e.component))
    return { ok: false, reason: `missing or empty field: component (source_type is ${e.source_type})` };
  if (e.source_type === 'resource' && !isText(e.resource))
    return { ok: false, reason: 'missing or empty field: resource (source_type is resource)' };
  if (e.source_type === 'connector' && e.event_type === 'check')
    return { ok: false, reason: 'a check event cannot have source_type connector (Canopsis: "cannot create check event for connector")' };
  const out: Event = { ...e };
  if (e.source_type !== 'resource') delete out.resource;
  if (e.source_type === 'connector') delete out.component;
  const needsState = e.event_type === 'check' || e.event_type === 'changestate';
  if (e.state !== undefined || needsState) {
    const s = typeof e.state === 'string' && /^[0-3]$/.test(e.state) ? Number(e.state) : e.state;
    if (!Number.isInteger(s) || (s as number) < 0 || (s as number) > 3) {
      return { ok: false, reason: `state must be an integer 0..3 for ${String(e.event_type)} (found ${JSON.stringify(e.state)})` };
    }
    out.state = s;
  }
  if (e.timestamp === undefined || e.timestamp === null || e.timestamp === '') out.timestamp = now();
  else if (typeof e.timestamp !== 'number' || !Number.isFinite(e.timestamp)) {
    return { ok: false, reason: `timestamp must be unix seconds (found ${JSON.stringify(e.timestamp)})` };
  } else if (Math.abs(e.timestamp - now()) > MAX_TIMESTAMP_DRIFT) {
    // As Canopsis: a clock far off (or a timestamp in milliseconds) would open alarms in another day.
    out.timestamp = now();
    out.timestamp_replaced = e.timestamp;
  }
  if (out.state_type === undefined && e.event_type === 'check') out.state_type = 1;
  if (routingKey(out).length > MAX_ROUTING_KEY)
    return { ok: false, reason: `routing key longer than ${MAX_ROUTING_KEY} bytes: shorten component or resource` };
  return { ok: true, event: out };
}

/**
 * Whether JSON text nests arrays and objects deeper than `limit`. One pass
 * over the bytes, no recursion and no parse: brackets inside strings do not
 * count. UTF-8 continuation bytes never equal an ASCII bracket or quote.
 */
export function nestedDeeperThan(text: Buffer, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: the next byte is escaped
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

export type Parsed = { ok: true; value: unknown } | { ok: false; reason: string };

/** An event body off the broker, parsed within the size and depth limits; the reason says which limit or what JSON error. */
export function parseEventBody(body: Buffer): Parsed {
  if (body.length > MAX_EVENT_BYTES)
    return { ok: false, reason: `event of ${body.length} bytes exceeds the ${MAX_EVENT_BYTES}-byte event limit` };
  if (nestedDeeperThan(body, MAX_EVENT_DEPTH))
    return { ok: false, reason: `event nested too deep: more than ${MAX_EVENT_DEPTH} levels of arrays or objects` };
  try {
    return { ok: true, value: JSON.parse(body.toString('utf8')) };
  } catch (e) {
    return { ok: false, reason: `not JSON: ${(e as Error).message}` };
  }
}

/** connector.connector_name.event_type.source_type.component[.resource] */
export function routingKey(e: Event): string {
  const parts = [e.connector, e.connector_name, e.event_type, e.source_type, e.component ?? ''];
  if (e.source_type === 'resource') parts.push(e.resource);
  return parts.map((p) => String(p ?? '')).join('.');
}

/** Entity id as Canopsis' Event.GetEID: resource/component, component, or connector/connector_name. */
export const entityId = (e: Event) =>
  e.source_type === 'resource'
    ? `${String(e.resource)}/${String(e.component)}`
    : e.source_type === 'connector'
      ? `${String(e.connector)}/${String(e.connector_name)}`
      : String(e.component);

/**
 * The source type Canopsis' API sets from the fields present (lib/api/event/api.go
 * processValue): resource with a resource, component with a component, else connector.
 */
export function derivedSourceType(e: Record<string, unknown>): 'resource' | 'component' | 'connector' {
  if (isText(e.component) && isText(e.resource)) return 'resource';
  if (isText(e.component)) return 'component';
  return 'connector';
}
