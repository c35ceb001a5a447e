import { type Event, RejectedEvent, type TaskModule } from '../tasks/types.js';

/*
 * collectdgw: what collectd's amqp plugin publishes (templates/collectd.conf.hbs:
 * Format "JSON", StoreRates true) turned into Canopsis perf events, which the
 * perfdata engine stores.
 *
 * collectd's JSON (src/utils_format_json.c) is an array of value lists
 * (the amqp plugin sends one per message):
 *   [{"values":[0.2],"dstypes":["gauge"],"dsnames":["value"],"time":1280959128.000,
 *     "interval":10.000,"host":"h","plugin":"cpu","plugin_instance":"",
 *     "type":"percent","type_instance":"user"}]
 * A value that is not finite is written as null; with StoreRates true the
 * values of derive/counter/absolute sources are already per-second rates
 * while dstypes still names the source type.
 *
 * Naming, one event per value list (Canopsis 2's collectd2event convention
 * for the resource, with the type kept in the metric so that names of one
 * resource never collide):
 *   component = host
 *   resource  = plugin[-plugin_instance]         cpu, memory, df-root, load
 *   metric    = type[-type_instance][-dsname]    percent-user, memory-used,
 *               (dsname only when the type has   percent_bytes-free,
 *                several sources)                 load-shortterm
 * type: the dstype upper-cased (GAUGE, DERIVE, COUNTER, ABSOLUTE); with
 * StoreRates (the default here, as the template sets it) a non-gauge value
 * is a rate, so it is GAUGE, unit "/s". A null value is left out; a value
 * list whose values are all null gives no event (and is no error).
 *
 * The engine runtime dead-letters a body that is not a JSON object, and
 * collectd publishes an array: event_processing takes `{ collectd: [...] }`
 * (the array wrapped by whatever feeds this engine) or one value list as an
 * object; collectdToEvents is the pure conversion for any of the three.
 */

export interface CollectdOptions {
  /** As the amqp plugin's StoreRates: non-gauge values are already rates. Default true. */
  storeRates?: boolean;
}

export interface ConvertResult {
  events: Event[];
  skipped: Array<{ item: string; reason: string }>;
}

const DSTYPES = ['GAUGE', 'DERIVE', 'COUNTER', 'ABSOLUTE'] as const;
const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const text = (v: unknown) => (typeof v === 'string' ? v : '');
const joined = (a: string, b: string) => (b ? `${a}-${b}` : a);
const shown = (v: unknown) => {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 200 ? `${s.slice(0, 200)}...` : s;
};

/** The value lists of a body: an array, `{ collectd: [...] }`, or one value list. */
function valueLists(body: unknown): unknown[] | undefined {
  if (Array.isArray(body)) return body;
  if (isObject(body)) {
    if (Array.isArray(body.collectd)) return body.collectd;
    if ('values' in body) return [body];
  }
  return undefined;
}

function toEvent(vl: unknown, storeRates: boolean): Event | string | null {
  if (!isObject(vl)) return 'not a value list object';
  const host = text(vl.host);
  const plugin = text(vl.plugin);
  const type = text(vl.type);
  if (!host) return 'host missing or empty';
  if (!plugin) return 'plugin missing or empty';
  if (!type) return 'type missing or empty';
  const values = vl.values;
  const dsnames = vl.dsnames;
  const dstypes = vl.dstypes;
  if (!Array.isArray(values) || !Array.isArray(dsnames) || !Array.isArray(dstypes)) return 'values, dsnames and dstypes must be lists';
  if (values.length === 0 || values.length !== dsnames.length || values.length !== dstypes.length)
    return `values (${values.length}), dsnames (${dsnames.length}) and dstypes (${dstypes.length}) differ in length or are empty`;
  const time = vl.time;
  if (typeof time !== 'number' || !Number.isFinite(time) || time <= 0) return `time ${shown(time)} is not unix seconds`;
  const base = joined(type, text(vl.type_instance));
  const perf: Array<Record<string, unknown>> = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v !== 'number' || !Number.isFinite(v)) continue; // null: not finite at the source
    const dstype = text(dstypes[i]).toUpperCase();
    if (!(DSTYPES as readonly string[]).includes(dstype)) return `dstype ${shown(dstypes[i])} is not one of ${DSTYPES.join(', ')}`;
    const rate = storeRates && dstype !== 'GAUGE';
    const entry: Record<string, unknown> = {
      metric: values.length > 1 ? joined(base, text(dsnames[i])) : base,
      value: v,
      type: rate ? 'GAUGE' : dstype,
    };
    if (rate) entry.unit = '/s';
    perf.push(entry);
  }
  // Every value null (e.g. the first rate of a counter): nothing to say, not an error.
  if (!perf.length) return null;
  return {
    connector: 'collectd',
    connector_name: 'collectd2event',
    event_type: 'perf',
    source_type: 'resource',
    component: host,
    resource: joined(plugin, text(vl.plugin_instance)),
    timestamp: Math.floor(time),
    perf_data_array: perf,
  };
}

/** Value lists to perf events, with what was left out and why. Never throws. */
export function convertCollectd(body: unknown, options: CollectdOptions = {}): ConvertResult {
  const out: ConvertResult = { events: [], skipped: [] };
  const lists = valueLists(body);
  if (!lists) {
    out.skipped.push({ item: shown(body), reason: 'not collectd JSON (a list of value lists, { collectd: [...] } or one value list)' });
    return out;
  }
  const storeRates = options.storeRates ?? true;
  for (const vl of lists) {
    const r = toEvent(vl, storeRates);
    if (typeof r === 'string') out.skipped.push({ item: shown(vl), reason: r });
    else if (r) out.events.push(r);
  }
  return out;
}

/** Value lists to perf events (the unusable ones left out). */
export function collectdToEvents(body: unknown, options: CollectdOptions = {}): Event[] {
  return convertCollectd(body, options).events;
}

export const collectdgw: TaskModule = {
  name: 'canopsis.collectdgw.process',
  // collectd's amqp plugin publishes an array of value lists per message.
  wrapArray: 'collectd',
  event_processing: async (engine, body: Event) => {
    const { events, skipped } = convertCollectd(body);
    if (skipped.length) {
      await engine.report('warning', 'collectd_skipped', {
        reason: skipped[0]!.reason,
        extra: { skipped: skipped.slice(0, 20), kept: events.length },
      });
    }
    // Malformed and nothing usable: dead-lettered with the reason, where it can be looked at.
    if (!events.length && skipped.length) throw new RejectedEvent(`collectdgw: ${skipped[0]!.reason}`);
    return events;
  },
};
