import os from 'node:os';
import { freshVhost, writeRuntimePrefix } from '../test/helpers/broker.js';
import { removeDir, tempDir } from '../test/helpers/index.js';
import { chainRound, median, rawRound } from './pipeline.js';
import { writeSection } from './report.js';

/*
 * Alarms per second through cleaner -> che -> axe on the embedded store,
 * against the raw 3-hop relay in the same run. (The alarms API under load
 * is bench/api.ts.)
 */

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

/** cleaner -> che -> axe -> Engine_sink, as the fused bench runs it too. */
export const CHAIN_CONF = `
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

export async function benchAlarms(): Promise<void> {
  const vhost = await freshVhost('bench-alarms');
  const dir = await tempDir('bench-alarms');
  try {
    await writeRuntimePrefix(dir, {
      vhost: vhost.name,
      engines: CHAIN_CONF,
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
    const md = `## Alarms: cleaner -> che -> axe on the embedded store

Measured ${new Date().toISOString().slice(0, 10)} with \`npm run bench\` (bench/alarms.ts) on ${os.cpus().length} cores, Node ${process.versions.node}, the machine's RabbitMQ; ${process.env.BENCH_EVENTS ?? 20000} check events per run, each on its own resource over 10 components (states 0-3: three in four open an alarm; che upserts 3 entities per event; the database dispatcher logs every alarm change), ${ROUNDS} alternating rounds with the raw amqplib 3-hop relay of bench/pipeline.ts.

| chain | median events/s | rounds |
| --- | ---: | --- |
| raw amqplib relay x3 | ${median(raw).toFixed(0)} | ${raw.map((x) => x.toFixed(0)).join(', ')} |
| cleaner -> che -> axe (SQLite) | ${median(ours).toFixed(0)} | ${ours.map((x) => x.toFixed(0)).join(', ')} |
| **ratio** | **${median(ratios).toFixed(2)}** | ${ratios.map((x) => x.toFixed(2)).join(', ')} |

Peak RSS of cleaner, che, axe in the last round: ${rss.map((x) => `${x.toFixed(0)} MiB`).join(', ')}.`;
    console.log(md);
    await writeSection('alarms', md);
  } finally {
    await vhost.remove();
    await removeDir(dir);
  }
}
