import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import amqp from 'amqplib';
import { execa } from 'execa';
import {
  checkEvent,
  type EngineProcess,
  freshVhost,
  startEngine,
  stopEngine,
  whenConsuming,
  writeRuntimePrefix,
} from '../test/helpers/broker.js';
import { ROOT, removeDir, tempDir, waitFor } from '../test/helpers/index.js';
import { writeSection } from './report.js';

/*
 * Throughput of a 3-engine chain against a raw amqplib 3-hop relay with the
 * same safety (persistent, confirms, ack after confirm, prefetch 1000), in
 * one run, alternating, so that the ratio survives a noisy machine.
 */

const N = Number(process.env.BENCH_EVENTS ?? 20_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const PREFETCH = 1000;

const CONF = `
[engine:cleaner]
event_processing=canopsis.cleaner.process.event_processing
next=event_filter
exchange=canopsis.events

[engine:event_filter]
event_processing=canopsis.event_filter.process.event_processing
next=pass

[engine:pass]
event_processing=bench.pass.event_processing
next=sink
`;

const PASS = `export default { name: 'bench.pass', event_processing: (engine, event) => event };`;

export async function publishAndDrain(url: string, exchange: string, key: string, outQueue: string, count = N): Promise<number> {
  const conn = await amqp.connect(url);
  const pub = await conn.createConfirmChannel();
  const sub = await conn.createChannel();
  await sub.prefetch(5000);
  let got = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  await sub.consume(outQueue, (m) => {
    if (!m) return;
    sub.ack(m);
    // Only the published events count: a scenario's own events (an ack back through axe) reach the end too.
    if (m.content.includes('"seq":') && ++got === count) done();
  });
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    const body = Buffer.from(JSON.stringify(checkEvent(i, { timestamp: 1_700_000_000 })));
    if (!pub.publish(exchange, key, body, { persistent: true })) await new Promise((r) => pub.once('drain', r));
  }
  await pub.waitForConfirms();
  await finished;
  const seconds = (performance.now() - started) / 1000;
  await pub.close();
  await sub.close();
  await conn.close();
  return count / seconds;
}

export async function rawRound(url: string): Promise<number> {
  const queues = ['raw_in', 'raw_1', 'raw_2', 'raw_out'];
  const relays = [0, 1, 2].map((i) =>
    execa(process.execPath, [path.join(ROOT, 'dist', 'bench', 'raw-relay.js'), url, queues[i]!, queues[i + 1]!, String(PREFETCH)], {
      reject: false,
      all: true,
      buffer: true,
    }),
  );
  let logs = relays.map(() => '');
  for (const [i, r] of relays.entries()) r.all?.on('data', (d: Buffer) => (logs[i] += d.toString()));
  await waitFor('raw relays consuming', async () => logs.every((l) => l.includes('consuming')), 20_000);
  const conn = await amqp.connect(url);
  const ch = await conn.createChannel();
  for (const q of queues) await ch.assertQueue(q, { durable: true });
  await ch.close();
  await conn.close();
  const rate = await publishAndDrain(url, '', 'raw_in', 'raw_out');
  for (const r of relays) r.kill('SIGTERM');
  await Promise.all(relays);
  logs = [];
  return rate;
}

export async function peakRss(p: EngineProcess): Promise<number> {
  const status = await readFile(`/proc/${p.pid}/status`, 'utf8').catch(() => '');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}

/** One run of an engine chain ending in Engine_sink: events/s from the first publish to the last arrival. */
export async function chainRound(dir: string, url: string, names: string[]): Promise<{ rate: number; rssMiB: number[] }> {
  const engines = names.map((n) => startEngine(dir, n));
  for (const e of engines) await whenConsuming(e);
  const conn = await amqp.connect(url);
  const ch = await conn.createChannel();
  await ch.assertQueue('Engine_sink', {
    durable: true,
    arguments: { 'x-dead-letter-exchange': 'canopsis.dead', 'x-dead-letter-routing-key': 'Engine_sink.dead' },
  });
  await ch.close();
  await conn.close();
  const rate = await publishAndDrain(url, 'canopsis.events', 'nagios.nagios1.check.resource.host', 'Engine_sink');
  const rssMiB = await Promise.all(engines.map(peakRss));
  await Promise.all(engines.map((e) => stopEngine(e)));
  return { rate, rssMiB };
}

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function benchPipeline(): Promise<void> {
  const vhost = await freshVhost('bench');
  const dir = await tempDir('bench');
  try {
    await writeRuntimePrefix(dir, { vhost: vhost.name, engines: CONF, plugins: { 'pass.mjs': PASS }, prefetch: PREFETCH });
    const raw: number[] = [];
    const ours: number[] = [];
    const ratios: number[] = [];
    let rss: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const r = await rawRound(vhost.url);
      const o = await chainRound(dir, vhost.url, ['cleaner', 'event_filter', 'pass']);
      raw.push(r);
      ours.push(o.rate);
      ratios.push(o.rate / r);
      rss = o.rssMiB;
      console.log(`round ${i + 1}: raw ${r.toFixed(0)} ev/s, ours ${o.rate.toFixed(0)} ev/s, ratio ${(o.rate / r).toFixed(2)}`);
    }
    const md = `## Event pipeline: 3-engine chain vs raw amqplib 3-hop relay

Measured ${new Date().toISOString().slice(0, 10)} with \`npm run bench\` (bench/pipeline.ts) on ${os.cpus().length} cores, Node ${process.versions.node}, the machine's RabbitMQ; ${N} persistent check events per run, ${ROUNDS} alternating rounds, each relay and engine its own process, prefetch ${PREFETCH}, publisher confirms, ack after confirm on every hop.

| chain | median events/s | rounds |
| --- | ---: | --- |
| raw amqplib relay x3 | ${median(raw).toFixed(0)} | ${raw.map((x) => x.toFixed(0)).join(', ')} |
| cleaner -> event_filter -> pass-through | ${median(ours).toFixed(0)} | ${ours.map((x) => x.toFixed(0)).join(', ')} |
| **ratio ours / raw** | **${median(ratios).toFixed(2)}** | ${ratios.map((x) => x.toFixed(2)).join(', ')} (target >= 0.60) |

Peak RSS of the engine processes in the last round: ${rss.map((x) => `${x.toFixed(0)} MiB`).join(', ')}.
The raw relay parses and re-serialises JSON like an engine does, and does nothing else: the gap is the cost of validation (cleaner), the rules (event_filter), dead-letter bookkeeping and ordering.`;
    console.log(md);
    await writeSection('pipeline', md);
  } finally {
    await vhost.remove();
    await removeDir(dir);
  }
}
