import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freshVhost, writeRuntimePrefix } from '../test/helpers/broker.js';
import { removeDir, tempDir } from '../test/helpers/index.js';
import { CHAIN_CONF } from './alarms.js';
import { chainRound, median, rawRound } from './pipeline.js';
import { writeSection } from './report.js';

/*
 * The fused pipeline (issue 18): cleaner -> che -> axe on the embedded
 * store, as three processes and fused into one (`engine-launcher -e
 * fused`), against the raw amqplib 3-hop relay, alternating in the same
 * run. Each chain round starts from an empty store, so every round opens
 * the same alarms.
 */

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const N = Number(process.env.BENCH_EVENTS ?? 20_000);

export async function benchFused(): Promise<void> {
  const vhost = await freshVhost('bench-fused');
  const dir = await tempDir('bench-fused');
  const db = path.join(dir, 'var', 'lib', 'canopsis', 'canopsis.db');
  const fresh = async () => {
    for (const f of [db, `${db}-wal`, `${db}-shm`]) await rm(f, { force: true });
  };
  try {
    await writeRuntimePrefix(dir, {
      vhost: vhost.name,
      engines: CHAIN_CONF,
      files: { 'etc/runtime.conf': `[store]\nbackend = embedded\nfile = ${db}\n\n[dispatchers]\nevent_dispatchers = database\n` },
    });
    const raw: number[] = [];
    const split: number[] = [];
    const fused: number[] = [];
    let rss = { split: [] as number[], fused: [] as number[] };
    for (let i = 0; i < ROUNDS; i++) {
      const r = await rawRound(vhost.url);
      await fresh();
      const s = await chainRound(dir, vhost.url, ['cleaner', 'che', 'axe']);
      await fresh();
      const f = await chainRound(dir, vhost.url, ['cleaner,che,axe']);
      raw.push(r);
      split.push(s.rate);
      fused.push(f.rate);
      rss = { split: s.rssMiB, fused: f.rssMiB };
      console.log(
        `round ${i + 1}: raw ${r.toFixed(0)} ev/s, 3 processes ${s.rate.toFixed(0)} (${(s.rate / r).toFixed(2)}), fused ${f.rate.toFixed(0)} (${(f.rate / r).toFixed(2)})`,
      );
    }
    const row = (name: string, xs: number[], goal: string) =>
      `| ${name} | ${median(xs).toFixed(0)} | ${(median(xs) / median(raw)).toFixed(2)} | ${goal} | ${xs.map((x) => x.toFixed(0)).join(', ')} |`;
    const md = `## Fused pipeline: cleaner -> che -> axe in one process

Measured ${new Date().toISOString().slice(0, 10)} with \`npm run bench fused\` (bench/fused.ts) on ${os.cpus().length} cores, Node ${process.versions.node}, the machine's RabbitMQ; ${N} check events per run as in the alarms section (each its own resource, three in four open an alarm, the database dispatcher on), a fresh embedded store for every chain round, ${ROUNDS} alternating rounds.

| chain | median events/s | / raw relay | goal | rounds |
| --- | ---: | ---: | --- | --- |
| raw amqplib relay x3 (3 processes, 3 hops) | ${median(raw).toFixed(0)} | 1.00 | | ${raw.map((x) => x.toFixed(0)).join(', ')} |
${row('cleaner -> che -> axe, 3 processes', split, '>= 1.0')}
${row('cleaner -> che -> axe fused (`-e fused`, 1 process)', fused, '>= 2.0')}

Peak RSS in the last round: 3 processes ${rss.split.map((x) => `${x.toFixed(0)} MiB`).join(', ')}; fused ${rss.fused.map((x) => `${x.toFixed(0)} MiB`).join(', ')}.`;
    console.log(md);
    await writeSection('fused', md);
  } finally {
    await vhost.remove();
    await removeDir(dir);
  }
}
