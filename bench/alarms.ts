import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import type { StoredAlarm } from '../runtime/alarm/model.js';
import { ALARM_INDEXES } from '../runtime/engines/axe.js';
import { SqliteStore } from '../runtime/store/sqlite.js';
import { storedAlarm } from '../test/helpers/alarms.js';
import { freshVhost, writeRuntimePrefix } from '../test/helpers/broker.js';
import { ROOT, removeDir, tempDir, waitFor } from '../test/helpers/index.js';
import { chainRound, median, rawRound } from './pipeline.js';
import { writeSection } from './report.js';

/*
 * Alarms per second through cleaner -> che -> axe on the embedded store,
 * against the raw 3-hop relay in the same run; then GET /api/v4/alarms
 * requests per second with 10,000 alarms stored.
 */

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const PORT = 5795;
const KEY = 'bench-key-0123456789';

const CONF = `
[engine:cleaner]
event_processing=canopsis.cleaner.process.event_processing
next=che
exchange=canopsis.events

[engine:che]
event_processing=canopsis.che.process.event_processing
next=axe

[engine:axe]
event_processing=canopsis.axe.process.event_processing
next=sink
`;

async function apiRate(dir: string): Promise<{ rps: number; p50: number; p99: number }> {
  const store = new SqliteStore(path.join(dir, 'var', 'lib', 'canopsis', 'api.db'));
  const alarms = store.collection<StoredAlarm>('alarms');
  for (const f of ALARM_INDEXES) await alarms.ensureIndex(f);
  for (let i = 0; i < 10_000; i++) {
    const t = 1_700_000_000 + i;
    const id = `r${i}/c${i % 100}:${t}:1`;
    await alarms.put(
      id,
      storedAlarm({ id, entity: `r${i}/c${i % 100}`, opened: t, state: 1 + (i % 3), resolved: i % 4 === 0 ? t + 60 : null }),
    );
  }
  await store.close();
  await writeRuntimePrefix(dir, {
    vhost: 'unused',
    engines: CONF,
    files: {
      'etc/runtime.conf': `[store]\nbackend = embedded\nfile = ${dir}/var/lib/canopsis/api.db\n`,
      'etc/canopsis-secrets.ini': `[api]\nauthkey = ${KEY}\n`,
      'etc/webserver.conf': `[server]\nbind = 127.0.0.1\nport = ${PORT}\n`,
    },
  });
  const web = execa(process.execPath, [path.join(ROOT, 'dist', 'runtime', 'cli', 'webserver.js'), '--prefix', dir], { reject: false });
  try {
    await waitFor(
      'the API',
      async () =>
        (await fetch(`http://127.0.0.1:${PORT}/api/v4/alarms?limit=1`, { headers: { 'x-canopsis-authkey': KEY } }).catch(() => undefined))
          ?.status === 200,
      30_000,
    );
    const latencies: number[] = [];
    const until = performance.now() + 5000;
    let n = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (performance.now() < until) {
          const page = 1 + (n++ % 150);
          const t = performance.now();
          const r = await fetch(`http://127.0.0.1:${PORT}/api/v4/alarms?opened=true&limit=50&page=${page}&sort_by=t&sort=desc`, {
            headers: { 'x-canopsis-authkey': KEY },
          });
          await r.arrayBuffer();
          latencies.push(performance.now() - t);
        }
      }),
    );
    latencies.sort((a, b) => a - b);
    return {
      rps: latencies.length / 5,
      p50: latencies[Math.floor(latencies.length / 2)]!,
      p99: latencies[Math.floor(latencies.length * 0.99)]!,
    };
  } finally {
    web.kill('SIGTERM');
    await web;
  }
}

export async function benchAlarms(): Promise<void> {
  const vhost = await freshVhost('bench-alarms');
  const dir = await tempDir('bench-alarms');
  try {
    await writeRuntimePrefix(dir, {
      vhost: vhost.name,
      engines: CONF,
      files: {
        'etc/runtime.conf': `[store]\nbackend = embedded\nfile = ${dir}/var/lib/canopsis/canopsis.db\n\n[dispatchers]\nevent_dispatchers = database\n`,
      },
    });
    const raw: number[] = [];
    const ours: number[] = [];
    const ratios: number[] = [];
    let rss: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const r = await rawRound(vhost.url);
      const o = await chainRound(dir, vhost.url, ['cleaner', 'che', 'axe']);
      raw.push(r);
      ours.push(o.rate);
      ratios.push(o.rate / r);
      rss = o.rssMiB;
      console.log(
        `round ${i + 1}: raw ${r.toFixed(0)} ev/s, cleaner->che->axe ${o.rate.toFixed(0)} ev/s, ratio ${(o.rate / r).toFixed(2)}`,
      );
    }
    const api = await apiRate(path.join(dir, 'api'));
    console.log(`GET /api/v4/alarms: ${api.rps.toFixed(0)} req/s, p50 ${api.p50.toFixed(1)} ms, p99 ${api.p99.toFixed(1)} ms`);
    const md = `## Alarms: cleaner -> che -> axe on the embedded store, and the alarms API

Measured ${new Date().toISOString().slice(0, 10)} with \`npm run bench\` (bench/alarms.ts) on ${os.cpus().length} cores, Node ${process.versions.node}, the machine's RabbitMQ; ${process.env.BENCH_EVENTS ?? 20000} check events per run, each on its own resource over 10 components (states 0-3: three in four open an alarm; che upserts 3 entities per event; the database dispatcher logs every alarm change), ${ROUNDS} alternating rounds with the raw amqplib 3-hop relay of bench/pipeline.ts.

| chain | median events/s | rounds |
| --- | ---: | --- |
| raw amqplib relay x3 | ${median(raw).toFixed(0)} | ${raw.map((x) => x.toFixed(0)).join(', ')} |
| cleaner -> che -> axe (SQLite) | ${median(ours).toFixed(0)} | ${ours.map((x) => x.toFixed(0)).join(', ')} |
| **ratio** | **${median(ratios).toFixed(2)}** | ${ratios.map((x) => x.toFixed(2)).join(', ')} |

Peak RSS of cleaner, che, axe in the last round: ${rss.map((x) => `${x.toFixed(0)} MiB`).join(', ')}.

\`GET /api/v4/alarms?opened=true&limit=50&page=k\` with 10,000 alarms stored (7,500 open), 8 concurrent clients for 5 s: **${api.rps.toFixed(0)} requests/s**, p50 ${api.p50.toFixed(1)} ms, p99 ${api.p99.toFixed(1)} ms.`;
    console.log(md);
    await writeSection('alarms', md);
  } finally {
    await vhost.remove();
    await removeDir(dir);
  }
}
