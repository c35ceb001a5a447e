/*
 * Performance data of Canopsis events (shared/notes/canopsis-events.md,
 * perf_data): the Nagios string of `perf_data` and the list of
 * `perf_data_array`, both turned into one list of metrics. Pure and total:
 * a malformed item is skipped with the reason and the rest is kept (4.x threw
 * the whole string away on one bad item); nothing here throws.
 *
 * Nagios: space-separated items `'label'=value[UOM];[warn];[crit];[min];[max]`.
 *  - label: unquoted (up to the `=`, no whitespace) or single-quoted, where
 *    `''` stands for one quote and anything else, spaces included, is kept;
 *    an empty label is refused; a quote never closed skips up to the end of
 *    the word holding the next `=` (a label with spaces that lost its quote);
 *  - value: a decimal number (sign, exponent and a decimal comma accepted:
 *    "1,5" is 1.5) followed by an optional unit made of letters, `%`, `°`,
 *    `/` or `_` (s ms us % B KB MB GB TB c, and the B/s, °C plugins emit);
 *    `U` means undefined: the metric is skipped (with that reason);
 *  - warn, crit: a number or a Nagios range (`10`, `10:`, `~:10`, `10:20`,
 *    `@10:20`): the upper bound if it is a number, else the lower one, else
 *    undefined; min, max: a number or undefined. These never make an item
 *    fail; empty, missing or extra trailing fields are fine.
 *  - type: COUNTER for the unit `c`, GAUGE otherwise.
 * Only finite numbers come out (JSON cannot carry NaN or Infinity).
 */

export type MetricType = 'GAUGE' | 'DERIVE' | 'COUNTER' | 'ABSOLUTE';
export const METRIC_TYPES: readonly MetricType[] = ['GAUGE', 'DERIVE', 'COUNTER', 'ABSOLUTE'];

export interface Metric {
  name: string;
  value: number;
  unit?: string;
  warn?: number;
  crit?: number;
  min?: number;
  max?: number;
  type?: MetricType;
}

export interface Skipped {
  /** The item as it was written (truncated when long). */
  item: string;
  reason: string;
}

export interface Parsed {
  metrics: Metric[];
  skipped: Skipped[];
}

const MAX_ITEM_SHOWN = 200;
const shown = (s: string) => (s.length > MAX_ITEM_SHOWN ? `${s.slice(0, MAX_ITEM_SHOWN)}...` : s);

const NUMBER = /^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$/;
const VALUE = /^([-+]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][-+]?\d+)?)(.*)$/s;
const UNIT = /^[\p{L}%°/_]*$/u;

/** A number with an optional decimal comma; undefined unless finite. */
export function readNumber(text: string): number | undefined {
  const t = text.trim().replace(',', '.');
  if (!NUMBER.test(t)) return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : undefined;
}

/** warn/crit: a plain number, or the number a Nagios range holds (upper bound first). */
export function readThreshold(text: string): number | undefined {
  const t = text.trim().replace(/^@/, '');
  if (!t.includes(':')) return readNumber(t);
  const [lo = '', hi = ''] = t.split(':', 2);
  return readNumber(hi) ?? readNumber(lo);
}

const isSpace = (c: string | undefined) => c !== undefined && /\s/.test(c);

/** One item from position i: the label (quotes undone), the data after '=', or why it failed. */
function readItem(text: string, start: number): { end: number; raw: string; label?: string; data?: string; error?: string } {
  let i = start;
  let label = '';
  const toSpace = (from: number) => {
    let j = from;
    while (j < text.length && !isSpace(text[j])) j++;
    return j;
  };
  if (text[i] === "'") {
    i++;
    let closed = false;
    while (i < text.length) {
      if (text[i] === "'") {
        if (text[i + 1] === "'") {
          label += "'";
          i += 2;
          continue;
        }
        closed = true;
        i++;
        break;
      }
      label += text[i];
      i++;
    }
    if (!closed) {
      // No closing quote: most likely a label with spaces whose quote was lost,
      // so the item presumably ends with the word holding the first '='.
      const eq = text.indexOf('=', start);
      const end = eq < 0 ? text.length : toSpace(eq);
      return { end, raw: text.slice(start, end), error: 'unterminated quoted label' };
    }
    if (text[i] !== '=') {
      const end = toSpace(i);
      return { end, raw: text.slice(start, end), error: `expected '=' after the quoted label` };
    }
  } else {
    while (i < text.length && text[i] !== '=' && !isSpace(text[i])) label += text[i++];
    if (text[i] !== '=') return { end: i, raw: text.slice(start, i), error: `no '=' (expected label=value)` };
  }
  const end = toSpace(i + 1);
  return { end, raw: text.slice(start, end), label, data: text.slice(i + 1, end) };
}

function readData(name: string, data: string): Metric | string {
  if (name === '') return 'empty label';
  const [value = '', warn = '', crit = '', min = '', max = ''] = data.split(';');
  if (value === '') return 'empty value';
  if (value === 'U' || value === 'u') return 'value is U (undefined)';
  const m = VALUE.exec(value);
  if (!m) return `value "${shown(value)}" is not a number`;
  const n = readNumber(m[1]!);
  if (n === undefined) return `value "${shown(value)}" is not a finite number`;
  const unit = m[2]!;
  if (!UNIT.test(unit)) return `value "${shown(value)}": "${shown(unit)}" is not a unit`;
  const metric: Metric = { name, value: n, type: unit === 'c' ? 'COUNTER' : 'GAUGE' };
  if (unit) metric.unit = unit;
  const w = readThreshold(warn);
  const c = readThreshold(crit);
  const lo = readNumber(min);
  const hi = readNumber(max);
  if (w !== undefined) metric.warn = w;
  if (c !== undefined) metric.crit = c;
  if (lo !== undefined) metric.min = lo;
  if (hi !== undefined) metric.max = hi;
  return metric;
}

/** Parses a Nagios perf_data string; never throws. */
export function parsePerfData(text: string): Parsed {
  const out: Parsed = { metrics: [], skipped: [] };
  if (typeof text !== 'string') {
    if (text !== undefined && text !== null) out.skipped.push({ item: shown(String(text)), reason: 'perf_data is not a string' });
    return out;
  }
  let i = 0;
  while (i < text.length) {
    if (isSpace(text[i])) {
      i++;
      continue;
    }
    const item = readItem(text, i);
    // Always advances: an item is at least one character.
    i = Math.max(item.end, i + 1);
    if (item.error !== undefined) {
      out.skipped.push({ item: shown(item.raw), reason: item.error });
      continue;
    }
    const r = readData(item.label!, item.data!);
    if (typeof r === 'string') out.skipped.push({ item: shown(item.raw), reason: r });
    else out.metrics.push(r);
  }
  return out;
}

const describe = (v: unknown): string => {
  try {
    return shown(JSON.stringify(v) ?? String(v));
  } catch {
    return shown(String(v));
  }
};

/** A number, or a numeric string (decimal comma accepted); undefined otherwise. */
const numberOf = (v: unknown): number | undefined =>
  typeof v === 'number' ? (Number.isFinite(v) ? v : undefined) : typeof v === 'string' ? readNumber(v) : undefined;
const thresholdOf = (v: unknown): number | undefined => (typeof v === 'string' ? readThreshold(v) : numberOf(v));

/**
 * Canopsis perf_data_array: `[{metric, value, unit, min, max, warn, crit,
 * type}]`. metric a non-empty string; value a finite number or numeric
 * string; type GAUGE (when absent), DERIVE, COUNTER or ABSOLUTE, any case;
 * unit a string; min/max/warn/crit numbers (or numeric strings, ranges for
 * warn/crit) or left undefined. Bad items are skipped with the reason.
 */
export function fromPerfDataArray(arr: unknown): Parsed {
  const out: Parsed = { metrics: [], skipped: [] };
  if (arr === undefined || arr === null) return out;
  if (!Array.isArray(arr)) {
    out.skipped.push({ item: describe(arr), reason: 'perf_data_array is not a list' });
    return out;
  }
  for (const item of arr) {
    const skip = (reason: string) => out.skipped.push({ item: describe(item), reason });
    if (item === null || typeof item !== 'object' || Array.isArray(item)) {
      skip('not an object');
      continue;
    }
    const o = item as Record<string, unknown>;
    if (typeof o.metric !== 'string' || o.metric === '') {
      skip('metric missing or not a non-empty string');
      continue;
    }
    if (o.value === 'U' || o.value === 'u') {
      skip('value is U (undefined)');
      continue;
    }
    const value = numberOf(o.value);
    if (value === undefined) {
      skip(`value ${describe(o.value)} is not a finite number`);
      continue;
    }
    let type: MetricType = 'GAUGE';
    if (o.type !== undefined && o.type !== null && o.type !== '') {
      const t = typeof o.type === 'string' ? o.type.toUpperCase() : '';
      if (!(METRIC_TYPES as readonly string[]).includes(t)) {
        skip(`type ${describe(o.type)} is not one of ${METRIC_TYPES.join(', ')}`);
        continue;
      }
      type = t as MetricType;
    }
    const metric: Metric = { name: o.metric, value, type };
    if (typeof o.unit === 'string' && o.unit !== '') metric.unit = o.unit;
    const fields: Array<[keyof Metric & ('warn' | 'crit' | 'min' | 'max'), number | undefined]> = [
      ['warn', thresholdOf(o.warn)],
      ['crit', thresholdOf(o.crit)],
      ['min', numberOf(o.min)],
      ['max', numberOf(o.max)],
    ];
    for (const [k, v] of fields) if (v !== undefined) metric[k] = v;
    out.metrics.push(metric);
  }
  return out;
}
