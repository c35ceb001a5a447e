import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import pino from 'pino';
import { DEFAULT_ALARM_SETTINGS } from '../../runtime/alarm/model.js';
import type { RuntimeConfig } from '../../runtime/config/runtime.js';
import { collectdgw, collectdToEvents, convertCollectd } from '../../runtime/engines/collectdgw.js';
import { latestKey, METRICS, METRICS_LATEST, type MetricSample, perfdata, sampleKey } from '../../runtime/engines/perfdata.js';
import { checkEvent } from '../../runtime/event/canopsis-event.js';
import { fromPerfDataArray, type Metric, parsePerfData } from '../../runtime/perfdata/parse.js';
import { SqliteStore } from '../../runtime/store/sqlite.js';
import { type EngineHandle, type Event, RejectedEvent, type TaskContext } from '../../runtime/tasks/types.js';
import { removeDir, tempDir } from '../helpers/index.js';

/*
 * Perf data: the Nagios perf_data parser and perf_data_array reader
 * (properties and examples), collectd's JSON to perf events, and the
 * perfdata engine task on a real embedded store.
 */

// ---------------------------------------------------------------- parser: properties

const quote = (name: string) => `'${name.replace(/'/g, "''")}'`;
const needsQuotes = (name: string) => /[\s=']/.test(name);

interface Spec {
  metric: Metric;
  text: string;
}

const finite = fc
  .oneof(
    fc.integer({ min: -1_000_000, max: 1_000_000 }),
    fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e15, max: 1e15 }),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
  )
  .map((n) => (Object.is(n, -0) ? 0 : n));

/** A number as text, with a decimal comma half the time. */
const numText = (n: number, comma: boolean) => (comma ? String(n).replace('.', ',') : String(n));

/** warn/crit written as a number or a Nagios range, with the number the parser must keep. */
const threshold = fc.option(
  fc.tuple(finite, finite, fc.constantFrom('plain', 'upper', 'lower', 'tilde', 'at'), fc.boolean()).map(([a, b, form, comma]) => {
    const t = (n: number) => numText(n, comma);
    switch (form) {
      case 'plain':
        return { text: t(a), value: a };
      case 'upper':
        return { text: `${t(a)}:${t(b)}`, value: b };
      case 'lower':
        return { text: `${t(a)}:`, value: a };
      case 'tilde':
        return { text: `~:${t(b)}`, value: b };
      default:
        return { text: `@${t(a)}:${t(b)}`, value: b };
    }
  }),
  { nil: undefined },
);
const plain = fc.option(
  fc.tuple(finite, fc.boolean()).map(([n, comma]) => ({ text: numText(n, comma), value: n })),
  { nil: undefined },
);

const nameArb = fc.oneof(
  fc.string({ unit: 'binary', minLength: 1, maxLength: 16 }),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 16 }),
  fc.stringMatching(/^[a-z_][a-z0-9_./:-]{0,15}$/),
  fc.constantFrom("it's", 'a b', "'", "''", ' lead', 'trail ', 'tab\tin', 'x=y', 'C:\\ used %'),
);

const itemArb: fc.Arbitrary<Spec> = fc
  .record({
    name: nameArb,
    forceQuotes: fc.boolean(),
    value: finite,
    comma: fc.boolean(),
    unit: fc.constantFrom('', '%', 's', 'ms', 'us', 'B', 'KB', 'MB', 'GB', 'TB', 'c'),
    warn: threshold,
    crit: threshold,
    min: plain,
    max: plain,
    // How the fields end: trimmed after the last one set, all five, or with extra ';'.
    ending: fc.constantFrom('trim', 'full', 'extra'),
  })
  .map((r) => {
    const label = r.forceQuotes || needsQuotes(r.name) ? quote(r.name) : r.name;
    const fields = [`${numText(r.value, r.comma)}${r.unit}`, r.warn?.text ?? '', r.crit?.text ?? '', r.min?.text ?? '', r.max?.text ?? ''];
    if (r.ending === 'trim') while (fields.length > 1 && fields[fields.length - 1] === '') fields.pop();
    if (r.ending === 'extra') fields.push('');
    const metric: Metric = { name: r.name, value: r.value, type: r.unit === 'c' ? 'COUNTER' : 'GAUGE' };
    if (r.unit) metric.unit = r.unit;
    if (r.warn) metric.warn = r.warn.value;
    if (r.crit) metric.crit = r.crit.value;
    if (r.min) metric.min = r.min.value;
    if (r.max) metric.max = r.max.value;
    return { metric, text: `${label}=${fields.join(';')}` };
  });

const sepArb = fc.constantFrom(' ', '  ', '\t', ' \n ', '\r\n');
const joinItems = (texts: string[], seps: string[], lead: string, trail: string) =>
  lead + texts.map((t, i) => (i ? seps[i % seps.length]! : '') + t).join('') + trail;

test('property: well-formed items round-trip (quoting, units, ranges, decimal comma, empty fields)', () => {
  fc.assert(
    fc.property(
      fc.array(itemArb, { maxLength: 8 }),
      fc.array(sepArb, { minLength: 1, maxLength: 4 }),
      fc.constantFrom('', ' '),
      fc.constantFrom('', ' ', '\n'),
      (items, seps, lead, trail) => {
        const r = parsePerfData(
          joinItems(
            items.map((i) => i.text),
            seps,
            lead,
            trail,
          ),
        );
        assert.deepEqual(r.skipped, []);
        assert.deepEqual(
          r.metrics,
          items.map((i) => i.metric),
        );
      },
    ),
    { numRuns: 500 },
  );
});

test('property: parsing never throws; what comes out is well-formed', () => {
  const check = (s: string) => {
    const r = parsePerfData(s);
    for (const m of r.metrics) {
      assert.ok(m.name.length > 0);
      assert.ok(Number.isFinite(m.value));
      for (const k of ['warn', 'crit', 'min', 'max'] as const) assert.ok(m[k] === undefined || Number.isFinite(m[k]));
    }
    for (const s of r.skipped) assert.ok(s.reason.length > 0);
    // Items are whitespace-separated: never more outcomes than words.
    assert.ok(r.metrics.length + r.skipped.length <= s.split(/\s+/).filter(Boolean).length);
  };
  fc.assert(fc.property(fc.string({ unit: 'binary' }), check), { numRuns: 1000 });
  fc.assert(fc.property(fc.string({ unit: 'grapheme' }), check), { numRuns: 500 });
  // Strings made of the characters that matter to the grammar.
  fc.assert(
    fc.property(
      fc.string({ unit: fc.constantFrom("'", '=', ';', ' ', ':', '@', '~', ',', '.', '-', 'e', 'U', '1', '9', 'a', '%', '\t') }),
      check,
    ),
    { numRuns: 2000 },
  );
  for (const v of [undefined, null, 5, {}, []]) assert.doesNotThrow(() => parsePerfData(v as unknown as string));
});

const garbageArb = fc.oneof(
  fc.constantFrom(
    'label_without_equals',
    '=12',
    'empty=',
    'undef=U',
    'word=abc',
    'dots=1.2.3',
    'commas=1,2,3',
    'digitunit=5B5',
    'huge=1e999',
    "'quoted'x=1",
    '|',
    "''=3",
    'a=;1;2',
  ),
  // A word with no '=' at all.
  fc.string({ unit: 'binary', minLength: 1, maxLength: 12 }).filter((s) => !/[\s=']/.test(s)),
);

test('property: garbage items are skipped with a reason, good ones kept in order', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          itemArb.map((g) => ({ good: g })),
          garbageArb.map((b) => ({ bad: b })),
        ),
        { maxLength: 12 },
      ),
      (mixed) => {
        const r = parsePerfData(mixed.map((m) => ('good' in m ? m.good.text : m.bad)).join(' '));
        assert.deepEqual(
          r.metrics,
          mixed.flatMap((m) => ('good' in m ? [m.good.metric] : [])),
        );
        const bad = mixed.flatMap((m) => ('bad' in m ? [m.bad] : []));
        assert.deepEqual(
          r.skipped.map((s) => s.item),
          bad,
        );
        for (const s of r.skipped) assert.match(s.reason, /\S/);
      },
    ),
    { numRuns: 500 },
  );
});

test('property: perf_data_array never throws, keeps the good items', () => {
  fc.assert(
    fc.property(fc.anything(), (v) => {
      const r = fromPerfDataArray(v);
      for (const m of r.metrics) assert.ok(Number.isFinite(m.value) && m.name !== '');
    }),
    { numRuns: 1000 },
  );
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          itemArb.map((g) => ({ good: g.metric })),
          fc.anything().map((bad) => ({ bad })),
        ),
      ),
      (mixed) => {
        const arr = mixed.map((m) =>
          'good' in m
            ? {
                metric: m.good.name,
                value: m.good.value,
                unit: m.good.unit ?? null,
                warn: m.good.warn ?? null,
                crit: m.good.crit,
                min: m.good.min,
                max: m.good.max,
                type: m.good.type,
              }
            : m.bad,
        );
        const r = fromPerfDataArray(arr);
        const goods = mixed.flatMap((m) => ('good' in m ? [m.good] : []));
        // Every good item is kept, in order, among the metrics (a random value may happen to be a good item too).
        let at = 0;
        for (const m of r.metrics) if (at < goods.length && JSON.stringify(m) === JSON.stringify(goods[at])) at++;
        assert.equal(at, goods.length);
        assert.equal(r.metrics.length + r.skipped.length, arr.length);
      },
    ),
    { numRuns: 300 },
  );
});

// ---------------------------------------------------------------- parser: examples

test('quoted labels with spaces and doubled quotes', () => {
  const r = parsePerfData(`'C:\\ Label with spaces'=50%;80;90;0;100 'it''s'=1 '''start'=2 'end'''=3 ''''=4 plain=5`);
  assert.deepEqual(r.skipped, []);
  assert.deepEqual(
    r.metrics.map((m) => m.name),
    ['C:\\ Label with spaces', "it's", "'start", "end'", "'", 'plain'],
  );
  assert.deepEqual(r.metrics[0], {
    name: 'C:\\ Label with spaces',
    value: 50,
    unit: '%',
    warn: 80,
    crit: 90,
    min: 0,
    max: 100,
    type: 'GAUGE',
  });
});

test('units, U, decimal comma, ranges, empty and extra fields', () => {
  const r = parsePerfData(
    [
      'time=0.012s;1;2;0',
      'rta=1,5ms;;;;',
      'lat=250us',
      'mem=512MB;;;0;1024',
      'disk=1,2TB',
      'b=10B',
      'k=3KB',
      'g=7GB',
      'pkts=1234c',
      'load=0.5;@1:2;~:3',
      'free=20%;10:;5:',
      'undef=U;1;2',
      'exp=1.5e3',
      'neg=-3;-1;-2',
      'bare=7',
      'thr=1;abc;@x:y;min;max',
      'more=1;2;3;4;5;6;7',
    ].join(' '),
  );
  const by = Object.fromEntries(r.metrics.map((m) => [m.name, m]));
  assert.deepEqual(by.time, { name: 'time', value: 0.012, unit: 's', warn: 1, crit: 2, min: 0, type: 'GAUGE' });
  assert.deepEqual(by.rta, { name: 'rta', value: 1.5, unit: 'ms', type: 'GAUGE' });
  assert.equal(by.lat?.unit, 'us');
  assert.deepEqual(by.mem, { name: 'mem', value: 512, unit: 'MB', min: 0, max: 1024, type: 'GAUGE' });
  assert.deepEqual([by.disk?.value, by.disk?.unit], [1.2, 'TB']);
  assert.deepEqual([by.b?.unit, by.k?.unit, by.g?.unit], ['B', 'KB', 'GB']);
  assert.deepEqual(by.pkts, { name: 'pkts', value: 1234, unit: 'c', type: 'COUNTER' });
  assert.deepEqual([by.load?.warn, by.load?.crit], [2, 3]);
  assert.deepEqual([by.free?.warn, by.free?.crit], [10, 5]);
  assert.equal(by.undef, undefined);
  assert.equal(by.exp?.value, 1500);
  assert.deepEqual([by.neg?.value, by.neg?.warn, by.neg?.crit], [-3, -1, -2]);
  assert.deepEqual(by.bare, { name: 'bare', value: 7, type: 'GAUGE' });
  assert.deepEqual(by.thr, { name: 'thr', value: 1, type: 'GAUGE' }, 'unreadable thresholds left undefined, item kept');
  assert.deepEqual(by.more, { name: 'more', value: 1, warn: 2, crit: 3, min: 4, max: 5, type: 'GAUGE' });
  assert.deepEqual(r.skipped, [{ item: 'undef=U;1;2', reason: 'value is U (undefined)' }]);
});

test('malformed items: each skipped with its reason, the rest kept', () => {
  const r = parsePerfData(`ok=1 noequals =5 e= x=abc y=1.2.3 z=5B5 inf=1e999 'closed'junk=5 last=6 'open label=3 after=4`);
  // A quote never closed: the item is taken to end with the word holding the next '='.
  assert.deepEqual(
    r.metrics.map((m) => m.name),
    ['ok', 'last', 'after'],
  );
  assert.deepEqual(
    r.skipped.map((s) => [s.item, s.reason]),
    [
      ['noequals', "no '=' (expected label=value)"],
      ['=5', 'empty label'],
      ['e=', 'empty value'],
      ['x=abc', 'value "abc" is not a number'],
      ['y=1.2.3', 'value "1.2.3": ".3" is not a unit'],
      ['z=5B5', 'value "5B5": "B5" is not a unit'],
      ['inf=1e999', 'value "1e999" is not a finite number'],
      ["'closed'junk=5", "expected '=' after the quoted label"],
      ["'open label=3", 'unterminated quoted label'],
    ],
  );
  assert.deepEqual(parsePerfData(''), { metrics: [], skipped: [] });
  assert.deepEqual(parsePerfData('   \n '), { metrics: [], skipped: [] });
  assert.deepEqual(parsePerfData("'never closed"), {
    metrics: [],
    skipped: [{ item: "'never closed", reason: 'unterminated quoted label' }],
  });
});

test('perf_data_array: types, numeric strings, nulls; bad items skipped with a reason', () => {
  const r = fromPerfDataArray([
    { metric: 'cps_evt_per_sec', value: 12.5, unit: 'evt', type: 'GAUGE' },
    { metric: 'rx', value: '100', type: 'derive', min: '0', max: null, warn: '@10:20', crit: 30 },
    { metric: 'c', value: '1,5', type: 'Counter' },
    { metric: 'a', value: 1, type: 'ABSOLUTE', unit: null },
    { metric: 'u', value: 'U' },
    { metric: '', value: 1 },
    { value: 1 },
    { metric: 'nan', value: 'abc' },
    { metric: 't', value: 1, type: 'HISTOGRAM' },
    'string',
    null,
  ]);
  assert.deepEqual(r.metrics, [
    { name: 'cps_evt_per_sec', value: 12.5, unit: 'evt', type: 'GAUGE' },
    { name: 'rx', value: 100, type: 'DERIVE', min: 0, warn: 20, crit: 30 },
    { name: 'c', value: 1.5, type: 'COUNTER' },
    { name: 'a', value: 1, type: 'ABSOLUTE' },
  ]);
  assert.deepEqual(
    r.skipped.map((s) => s.reason),
    [
      'value is U (undefined)',
      'metric missing or not a non-empty string',
      'metric missing or not a non-empty string',
      'value "abc" is not a finite number',
      'type "HISTOGRAM" is not one of GAUGE, DERIVE, COUNTER, ABSOLUTE',
      'not an object',
      'not an object',
    ],
  );
  assert.deepEqual(fromPerfDataArray(undefined), { metrics: [], skipped: [] });
  assert.deepEqual(
    fromPerfDataArray({ metric: 'x' }).skipped.map((s) => s.reason),
    ['perf_data_array is not a list'],
  );
});

// ---------------------------------------------------------------- collectd

/** What collectd 5.12's amqp plugin (Format JSON, StoreRates true) publishes, as the engine sees it. */
const COLLECTD = [
  {
    values: [2.5],
    dstypes: ['gauge'],
    dsnames: ['value'],
    time: 1700000000.123,
    interval: 10.0,
    host: 'canopsis-1',
    plugin: 'cpu',
    plugin_instance: '',
    type: 'percent',
    type_instance: 'user',
  },
  {
    values: [1.25],
    dstypes: ['gauge'],
    dsnames: ['value'],
    time: 1700000000.123,
    interval: 10.0,
    host: 'canopsis-1',
    plugin: 'cpu',
    plugin_instance: '',
    type: 'percent',
    type_instance: 'system',
  },
  {
    values: [1048576000],
    dstypes: ['gauge'],
    dsnames: ['value'],
    time: 1700000000.456,
    interval: 10.0,
    host: 'canopsis-1',
    plugin: 'memory',
    plugin_instance: '',
    type: 'memory',
    type_instance: 'used',
  },
  {
    values: [63.2],
    dstypes: ['gauge'],
    dsnames: ['value'],
    time: 1700000000.5,
    interval: 10.0,
    host: 'canopsis-1',
    plugin: 'df',
    plugin_instance: 'root',
    type: 'percent_bytes',
    type_instance: 'free',
  },
  {
    values: [0.42, 0.3, 0.18],
    dstypes: ['gauge', 'gauge', 'gauge'],
    dsnames: ['shortterm', 'midterm', 'longterm'],
    time: 1700000000.9,
    interval: 10.0,
    host: 'canopsis-1',
    plugin: 'load',
    plugin_instance: '',
    type: 'load',
    type_instance: '',
  },
  {
    values: [1520.5, null],
    dstypes: ['derive', 'derive'],
    dsnames: ['rx', 'tx'],
    time: 1700000001,
    interval: 10.0,
    host: 'canopsis-1',
    plugin: 'interface',
    plugin_instance: 'eth0',
    type: 'if_octets',
    type_instance: '',
  },
  {
    values: [null],
    dstypes: ['derive'],
    dsnames: ['value'],
    time: 1700000001,
    interval: 10.0,
    host: 'canopsis-1',
    plugin: 'processes',
    plugin_instance: '',
    type: 'fork_rate',
    type_instance: '',
  },
];

test('collectd JSON to perf events: naming, timestamps, dsnames, rates, nulls', () => {
  const events = collectdToEvents(COLLECTD);
  const common = {
    connector: 'collectd',
    connector_name: 'collectd2event',
    event_type: 'perf',
    source_type: 'resource',
    component: 'canopsis-1',
  };
  assert.deepEqual(events, [
    { ...common, resource: 'cpu', timestamp: 1700000000, perf_data_array: [{ metric: 'percent-user', value: 2.5, type: 'GAUGE' }] },
    { ...common, resource: 'cpu', timestamp: 1700000000, perf_data_array: [{ metric: 'percent-system', value: 1.25, type: 'GAUGE' }] },
    {
      ...common,
      resource: 'memory',
      timestamp: 1700000000,
      perf_data_array: [{ metric: 'memory-used', value: 1048576000, type: 'GAUGE' }],
    },
    {
      ...common,
      resource: 'df-root',
      timestamp: 1700000000,
      perf_data_array: [{ metric: 'percent_bytes-free', value: 63.2, type: 'GAUGE' }],
    },
    {
      ...common,
      resource: 'load',
      timestamp: 1700000000,
      perf_data_array: [
        { metric: 'load-shortterm', value: 0.42, type: 'GAUGE' },
        { metric: 'load-midterm', value: 0.3, type: 'GAUGE' },
        { metric: 'load-longterm', value: 0.18, type: 'GAUGE' },
      ],
    },
    // StoreRates: the derive value is already a rate; the null tx is left out.
    {
      ...common,
      resource: 'interface-eth0',
      timestamp: 1700000001,
      perf_data_array: [{ metric: 'if_octets-rx', value: 1520.5, type: 'GAUGE', unit: '/s' }],
    },
  ]);
  // Every event passes the cleaner's checks.
  for (const e of events) assert.equal(checkEvent(e).ok, true, JSON.stringify(e));
  // Without StoreRates the source type is kept.
  assert.deepEqual(collectdToEvents([COLLECTD[5]], { storeRates: false })[0]?.perf_data_array, [
    { metric: 'if_octets-rx', value: 1520.5, type: 'DERIVE' },
  ]);
  // The wrapped and single-object shapes give the same events.
  assert.deepEqual(collectdToEvents({ collectd: COLLECTD }), events);
  assert.deepEqual(collectdToEvents(COLLECTD[4]), [events[4]]);
});

test('collectd: malformed value lists skipped with a reason; never throws', () => {
  const r = convertCollectd([
    COLLECTD[0],
    { values: [1], dstypes: ['gauge'], dsnames: ['value'], time: 1, plugin: 'cpu', type: 'percent' },
    { values: [1, 2], dstypes: ['gauge'], dsnames: ['a', 'b'], time: 1, host: 'h', plugin: 'p', type: 't' },
    { values: [1], dstypes: ['histogram'], dsnames: ['value'], time: 1, host: 'h', plugin: 'p', type: 't' },
    { values: [1], dstypes: ['gauge'], dsnames: ['value'], time: 'now', host: 'h', plugin: 'p', type: 't' },
    42,
  ]);
  assert.equal(r.events.length, 1);
  assert.deepEqual(
    r.skipped.map((s) => s.reason),
    [
      'host missing or empty',
      'values (2), dsnames (2) and dstypes (1) differ in length or are empty',
      'dstype "histogram" is not one of GAUGE, DERIVE, COUNTER, ABSOLUTE',
      'time "now" is not unix seconds',
      'not a value list object',
    ],
  );
  fc.assert(
    fc.property(fc.anything(), (v) => {
      convertCollectd(v);
      convertCollectd([v]);
      convertCollectd({ collectd: [v] });
    }),
    { numRuns: 500 },
  );
});

// ---------------------------------------------------------------- the tasks on a real store

const ctx: TaskContext = { logger: pino({ level: 'silent' }) };
let dir: string;
let store: SqliteStore;

interface Report {
  level: string;
  action: string;
  info: Record<string, unknown> | undefined;
}

function handle(retention: number): EngineHandle & { reports: Report[] } {
  const reports: Report[] = [];
  const runtime: RuntimeConfig = {
    file: path.join(dir, 'etc', 'runtime.conf'),
    store: { backend: 'embedded', file: store.file },
    dispatchers: [],
    alertsExchange: 'canopsis.alerts',
    alarms: DEFAULT_ALARM_SETTINGS,
    perfdataRetention: retention,
  };
  return {
    name: 'perfdata',
    worker: 0,
    prefix: dir,
    dispatch: async () => undefined,
    emit: async () => undefined,
    state: new Map(),
    store: async () => store,
    report: async (level, action, info) => {
      reports.push({ level, action, info: info as Record<string, unknown> | undefined });
    },
    runtime,
    reports,
  };
}

before(async () => {
  dir = await tempDir('perfdata');
  store = new SqliteStore(path.join(dir, 'var', 'canopsis.db'));
});

after(async () => {
  await store.close();
  await removeDir(dir);
});

test('perfdata: samples stored per entity, metric and timestamp; latest kept; event unchanged; skips reported', async () => {
  const engine = handle(3600);
  const now = Math.floor(Date.now() / 1000);
  const event: Event = {
    connector: 'nagios',
    connector_name: 'nag1',
    event_type: 'check',
    source_type: 'resource',
    component: 'web-1',
    resource: 'disk /',
    state: 0,
    timestamp: now,
    perf_data: `'/ used'=51,5%;80;90;0;100 inodes=U bad time=0.2s`,
    perf_data_array: [{ metric: 'extra', value: 3, type: 'COUNTER', unit: 'c' }],
  };
  const copy = structuredClone(event);
  assert.equal(await perfdata.event_processing!(engine, event, ctx), event);
  assert.deepEqual(event, copy, 'the event passes on unchanged');

  const samples = (await store.collection<MetricSample>(METRICS).find({ entity: 'disk //web-1' }, { sort: [['metric', 1]] })).map(
    ({ key: _k, ...d }) => d,
  );
  assert.deepEqual(samples, [
    {
      entity: 'disk //web-1',
      component: 'web-1',
      resource: 'disk /',
      metric: '/ used',
      value: 51.5,
      type: 'GAUGE',
      unit: '%',
      warn: 80,
      crit: 90,
      min: 0,
      max: 100,
      timestamp: now,
    },
    {
      entity: 'disk //web-1',
      component: 'web-1',
      resource: 'disk /',
      metric: 'extra',
      value: 3,
      type: 'COUNTER',
      unit: 'c',
      timestamp: now,
    },
    {
      entity: 'disk //web-1',
      component: 'web-1',
      resource: 'disk /',
      metric: 'time',
      value: 0.2,
      type: 'GAUGE',
      unit: 's',
      timestamp: now,
    },
  ]);
  assert.ok(await store.collection<MetricSample>(METRICS).get(sampleKey('disk //web-1', 'time', now)));
  assert.equal(engine.reports.length, 1);
  assert.equal(engine.reports[0]?.action, 'perfdata_skipped');
  assert.equal(engine.reports[0]?.level, 'warning');
  assert.match(String(engine.reports[0]?.info?.reason), /2 items skipped \(first: value is U/);
  assert.deepEqual((engine.reports[0]!.info!.extra as { skipped: unknown[] }).skipped, [
    { item: 'inodes=U', reason: 'value is U (undefined)' },
    { item: 'bad', reason: "no '=' (expected label=value)" },
  ]);

  // A later sample moves latest; an older one (late, replayed) does not; a redelivery adds no duplicate.
  await perfdata.event_processing!(engine, { ...event, perf_data: 'time=0.4s', perf_data_array: undefined, timestamp: now + 10 }, ctx);
  await perfdata.event_processing!(engine, { ...event, perf_data: 'time=0.1s', perf_data_array: undefined, timestamp: now - 10 }, ctx);
  await perfdata.event_processing!(engine, { ...event, perf_data: 'time=0.1s', perf_data_array: undefined, timestamp: now - 10 }, ctx);
  const times = await store
    .collection<MetricSample>(METRICS)
    .find({ entity: 'disk //web-1', metric: 'time' }, { sort: [['timestamp', 1]] });
  assert.deepEqual(
    times.map((t) => [t.timestamp, t.value]),
    [
      [now - 10, 0.1],
      [now, 0.2],
      [now + 10, 0.4],
    ],
  );
  const latest = await store.collection<MetricSample>(METRICS_LATEST).get(latestKey('disk //web-1', 'time'));
  assert.deepEqual([latest?.timestamp, latest?.value], [now + 10, 0.4]);

  // A component event, events without perf data, and one without a component.
  await perfdata.event_processing!(
    engine,
    {
      connector: 'c',
      connector_name: 'n',
      event_type: 'perf',
      source_type: 'component',
      component: 'db-1',
      timestamp: now,
      perf_data: 'conns=12',
    },
    ctx,
  );
  assert.equal((await store.collection<MetricSample>(METRICS).find({ entity: 'db-1' }))[0]?.value, 12);
  const plain = {
    connector: 'c',
    connector_name: 'n',
    event_type: 'check',
    source_type: 'component',
    component: 'db-1',
    state: 0,
    timestamp: now,
  };
  assert.equal(await perfdata.event_processing!(engine, plain, ctx), plain);
  const before = engine.reports.length;
  await perfdata.event_processing!(engine, { perf_data: 'x=1' }, ctx);
  assert.equal(engine.reports.length, before + 1);
  assert.equal(await store.collection<MetricSample>(METRICS).count({ metric: 'x' }), 0);
});

test('perfdata beat: samples older than the retention are deleted, newer kept; 0 keeps everything', async () => {
  const now = Math.floor(Date.now() / 1000);
  const keep = handle(0);
  const engine = handle(600);
  const ev = (ts: number, v: number): Event => ({
    connector: 'c',
    connector_name: 'n',
    event_type: 'perf',
    source_type: 'resource',
    component: 'ret-1',
    resource: 'cpu',
    timestamp: ts,
    perf_data: `user=${v}% system=${v}%`,
  });
  for (const [ts, v] of [
    [now - 7200, 1],
    [now - 601 - 5, 2],
    [now - 300, 3],
    [now, 4],
  ] as const)
    await perfdata.event_processing!(engine, ev(ts, v), ctx);
  // Only old samples for this metric: its latest document expires too.
  await perfdata.event_processing!(engine, { ...ev(now - 7200, 9), perf_data: 'gone=1' }, ctx);
  const c = store.collection<MetricSample>(METRICS);
  assert.equal(await c.count({ entity: 'cpu/ret-1' }), 9);

  await perfdata.beat_processing!(keep, ctx);
  assert.equal(await c.count({ entity: 'cpu/ret-1' }), 9, 'retention 0: nothing deleted');

  await perfdata.beat_processing!(engine, ctx);
  const left = await c.find(
    { entity: 'cpu/ret-1' },
    {
      sort: [
        ['timestamp', 1],
        ['metric', 1],
      ],
    },
  );
  assert.deepEqual(
    left.map((d) => [d.metric, d.value]),
    [
      ['system', 3],
      ['user', 3],
      ['system', 4],
      ['user', 4],
    ],
  );
  const latest = store.collection<MetricSample>(METRICS_LATEST);
  assert.equal(await latest.get(latestKey('cpu/ret-1', 'gone')), undefined);
  assert.equal((await latest.get(latestKey('cpu/ret-1', 'user')))?.value, 4);
  assert.ok(engine.reports.some((r) => r.action === 'perfdata_expired'));
});

test('collectdgw task then perfdata: collectd value lists stored as metrics of host/plugin resources', async () => {
  const gw = handle(3600);
  const now = Math.floor(Date.now() / 1000);
  const fresh = COLLECTD.map((vl) => ({ ...vl, host: 'gw-host', time: now + 0.5 }));
  const out = await collectdgw.event_processing!(gw, { collectd: fresh }, ctx);
  assert.ok(Array.isArray(out));
  assert.equal(out.length, 6);
  assert.deepEqual(await collectdgw.event_processing!(gw, fresh[4]!, ctx), collectdToEvents(fresh[4]));
  const engine = handle(3600);
  for (const e of out as Event[]) await perfdata.event_processing!(engine, e, ctx);
  const c = store.collection<MetricSample>(METRICS);
  const load = await c.find({ entity: 'load/gw-host' }, { sort: [['metric', 1]] });
  assert.deepEqual(
    load.map((d) => [d.metric, d.value, d.timestamp]),
    [
      ['load-longterm', 0.18, now],
      ['load-midterm', 0.3, now],
      ['load-shortterm', 0.42, now],
    ],
  );
  assert.equal(await c.count({ component: 'gw-host' }), 8);
  assert.deepEqual(engine.reports, []);

  // Value lists with nothing usable: dead-lettered with the reason; all-null ones are no error.
  await assert.rejects(
    async () => collectdgw.event_processing!(gw, { collectd: [{ values: [1] }] }, ctx),
    (e: Error) => e instanceof RejectedEvent && /host missing/.test(e.message),
  );
  await assert.rejects(async () => collectdgw.event_processing!(gw, { hello: 'world' }, ctx), RejectedEvent);
  assert.deepEqual(await collectdgw.event_processing!(gw, fresh[6]!, ctx), []);
  assert.deepEqual(await collectdgw.event_processing!(gw, { collectd: [] }, ctx), []);
});
