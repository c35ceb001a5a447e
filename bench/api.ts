import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { execa } from 'execa';
import type { StoredAlarm } from '../runtime/alarm/model.js';
import { ALARM_INDEXES } from '../runtime/engines/axe.js';
import { ENTITIES, type Entity } from '../runtime/engines/che.js';
import { SqliteStore } from '../runtime/store/sqlite.js';
import { storedAlarm } from '../test/helpers/alarms.js';
import { writeRuntimePrefix } from '../test/helpers/broker.js';
import { ROOT, removeDir, tempDir, waitFor } from '../test/helpers/index.js';
import { writeSection } from './report.js';

/*
 * GET /api/v4/alarms under load: the webserver over an embedded store of
 * 10,000 alarms (7,500 open, each with its entity), loaded by autocannon
 * with 8 connections, the console's query (open alarms, newest first, 50 a
 * page). Pages are read across the whole range (1..150), then the first and
 * the last alone, so that a deep page costs what a first one does; last,
 * across the range again while another process changes alarms as axe
 * would, each change emptying what the API remembers (runtime/web/stamped.ts).
 */

const PORT = 6001;
const KEY = 'bench-key-0123456789';
const ALARMS = 10_000;
const PAGES = 150;
const CONNECTIONS = 8;
const SECONDS = Number(process.env.BENCH_API_SECONDS ?? 10);
const GOAL = { rps: 2000, p99: 50 };
/** Alarm changes per second in the last line. */
const WRITES = 10;
/** The figures before the API remembered anything (issue 18): the same query, 8 clients, pages 1..150. */
const BEFORE = { rps: 685, p99: 41 };

/** Changes open alarms, one every 1000/rate ms, as axe writes them (a modify that stamps timing.written). */
const WRITER = `
import { SqliteStore } from ${JSON.stringify(path.join(ROOT, 'dist', 'runtime', 'store', 'sqlite.js'))};
const alarms = new SqliteStore(process.env.STORE_FILE).collection('alarms');
const keys = (await alarms.find({ 'v.resolved': null }, { limit: 1000 })).map((a) => a.key);
let i = 0;
setInterval(() => {
  void alarms.modify(keys[i++ % keys.length], (a) => ({
    ...a,
    v: { ...a.v, last_event_date: a.v.last_event_date + 1 },
    timing: { ...a.timing, written: Date.now() },
  }));
}, 1000 / Number(process.env.RATE));
`;
const url = (page: number) => `/api/v4/alarms?opened=true&limit=50&page=${page}&sort_by=t&sort=desc`;

async function seed(file: string): Promise<void> {
  const store = new SqliteStore(file);
  const alarms = store.collection<StoredAlarm>('alarms');
  const entities = store.collection<Entity>(ENTITIES);
  for (const f of ALARM_INDEXES) await alarms.ensureIndex(f);
  for (let i = 0; i < ALARMS; i++) {
    const t = 1_700_000_000 + i;
    const component = `c${i % 100}`;
    const entity = `r${i}/${component}`;
    await alarms.put(
      `${entity}:${t}:1`,
      storedAlarm({ id: `${entity}:${t}:1`, entity, opened: t, state: 1 + (i % 3), resolved: i % 4 === 0 ? t + 60 : null }),
    );
    await entities.put(entity, {
      type: 'resource',
      name: `r${i}`,
      created: t,
      last_event_date: t,
      enabled: true,
      connector: 'nagios/n1',
      component,
      depends: [component],
      description: '',
      infos: {},
      impact_level: 1,
    });
  }
  await store.close();
}

export interface Load {
  label: string;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

/** autocannon at CONNECTIONS connections for SECONDS, each request on the next of `pages`. */
async function load(label: string, pages: number[]): Promise<Load> {
  let n = 0;
  const r = await autocannon({
    url: `http://127.0.0.1:${PORT}`,
    connections: CONNECTIONS,
    duration: SECONDS,
    headers: { 'x-canopsis-authkey': KEY },
    requests: [{ method: 'GET', setupRequest: (req) => ({ ...req, path: url(pages[n++ % pages.length]!) }) }],
  });
  return {
    label,
    rps: r.requests.average,
    p50: r.latency.p50,
    p99: r.latency.p99,
    errors: r.errors + r.timeouts + r.non2xx,
  };
}

const row = (l: Load, goal = true) =>
  `| ${l.label} | **${l.rps.toFixed(0)}** | ${goal ? `>= ${GOAL.rps}` : '-'} | ${l.p50.toFixed(1)} | **${l.p99.toFixed(1)}** | ${goal ? `<= ${GOAL.p99}` : '-'} | ${l.errors} |`;

export async function benchApi(): Promise<void> {
  const dir = await tempDir('bench-api');
  const file = path.join(dir, 'var', 'lib', 'canopsis', 'api.db');
  try {
    await seed(file);
    await writeRuntimePrefix(dir, {
      vhost: 'unused',
      engines: '',
      files: {
        'etc/runtime.conf': `[store]\nbackend = embedded\nfile = ${file}\n`,
        'etc/canopsis-secrets.ini': `[api]\nauthkey = ${KEY}\n`,
        'etc/webserver.conf': `[server]\nbind = 127.0.0.1\nport = ${PORT}\ntls = false\n`,
      },
    });
    const web = execa(process.execPath, [path.join(ROOT, 'dist', 'runtime', 'cli', 'webserver.js'), '--prefix', dir], { reject: false });
    try {
      await waitFor(
        'the API',
        async () =>
          (await fetch(`http://127.0.0.1:${PORT}${url(1)}`, { headers: { 'x-canopsis-authkey': KEY } }).catch(() => undefined))?.status ===
          200,
        30_000,
      );
      const all = Array.from({ length: PAGES }, (_, i) => i + 1);
      // A warm-up, not reported: the JIT and SQLite's page cache as a running server has them.
      await load('warm-up', all);
      const runs = [
        await load(`pages 1..${PAGES}, in turn`, all),
        await load('page 1 only', [1]),
        await load(`page ${PAGES} only (the last)`, [PAGES]),
      ];
      const writer = execa(process.execPath, ['--input-type=module', '-e', WRITER], {
        reject: false,
        env: { STORE_FILE: file, RATE: String(WRITES) },
      });
      let writing: Load;
      try {
        writing = await load(`pages 1..${PAGES}, ${WRITES} alarm changes/s`, all);
      } finally {
        writer.kill('SIGTERM');
        await writer;
      }
      for (const l of [...runs, writing])
        console.log(
          `GET /api/v4/alarms ${l.label}: ${l.rps.toFixed(0)} req/s, p50 ${l.p50.toFixed(1)} ms, p99 ${l.p99.toFixed(1)} ms, ${l.errors} errors`,
        );
      const md = `## Alarms API: GET /api/v4/alarms under load

Measured ${new Date().toISOString().slice(0, 10)} with \`npm run bench\` (bench/api.ts) on ${os.cpus().length} cores, Node ${process.versions.node}: the webserver over an embedded store of ${ALARMS.toLocaleString('en')} alarms (7,500 open, each with its entity), \`GET ${url(0).replace('page=0', 'page=k')}\`, autocannon with ${CONNECTIONS} connections for ${SECONDS} s per line (the load tool runs on the same machine).

| pages read | requests/s | goal | p50 ms | p99 ms | goal | errors |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
${runs.map((l) => row(l)).join('\n')}
${row(writing, false)}

Before (issue 18: a count of the open set and an OFFSET walk on every page, each document parsed and serialised on every request): ${BEFORE.rps} requests/s, p99 ${BEFORE.p99} ms over pages 1..${PAGES}. The first three lines read an unchanged store, as a console does between changes: the count, the rows, the page ends and each alarm's text are remembered while the alarms' change stamp holds. The last line has another process change ${WRITES} alarms a second meanwhile: each change empties what was remembered of the pages, which are then counted and read again (from the nearest page end, by key), and only the changed alarms are parsed and serialised again.`;
      console.log(md);
      await writeSection('api', md);
    } finally {
      web.kill('SIGTERM');
      await web;
    }
  } finally {
    await removeDir(dir);
  }
}
