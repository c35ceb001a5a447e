import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { execa } from 'execa';
import { ENGINE_NODE_FLAGS } from '../installer/services/platform.js';
import { DEFAULT_ENGINES } from '../installer/settings/schema.js';
import { type EngineProcess, freshVhost, LAUNCHER, stopEngine, whenConsuming, writeRuntimePrefix } from '../test/helpers/broker.js';
import { removeDir, tempDir } from '../test/helpers/index.js';
import { publishAndDrain } from './pipeline.js';
import { writeSection } from './report.js';

/*
 * Resident memory of each engine of the default chain, each its own
 * process as supervisord runs it: idle once started, at its peak while
 * 10,000 events go through the whole chain, and once they are through.
 * Run twice in the same run: with V8's defaults and with the node flags
 * bin/engine-launcher passes (installer/services/platform.ts), so that
 * what the flags buy is measured on the same machine at the same time.
 */

const N = Number(process.env.BENCH_MEMORY_EVENTS ?? 10_000);
const GOAL_IDLE = 60;
const GOAL_LOADED = 80;
const CHAIN = ['cleaner', 'event_filter', 'che', 'pbehavior', 'axe', 'action', 'perfdata'];

/** The default engines of a new install (collectdgw aside: nothing feeds it here), perfdata publishing to Engine_sink. */
function chainConf(): string {
  return DEFAULT_ENGINES.filter(([name]) => CHAIN.includes(name))
    .map(([name, s]) => {
      const lines = [`[engine:${name}]`];
      for (const key of ['event_processing', 'beat_processing', 'exchange'] as const) if (s[key]) lines.push(`${key}=${s[key]}`);
      lines.push(`next=${s.next || 'sink'}`);
      return lines.join('\n');
    })
    .join('\n\n');
}

/** startEngine of test/helpers/broker.ts, with node flags before the script as bin/engine-launcher puts them. */
function startWith(prefix: string, name: string, nodeFlags: readonly string[]): EngineProcess {
  const p = execa(
    process.execPath,
    [...nodeFlags, LAUNCHER, '-e', 'dynamic', '-n', name, '-w', '0', '-l', 'info', '--prefix', prefix, '--stats-interval', '0'],
    { reject: false, all: true, buffer: true },
  );
  let seen = '';
  p.all?.on('data', (d: Buffer) => {
    seen += d.toString();
  });
  return Object.assign(p, { logs: () => seen });
}

interface Status {
  rss: number;
  hwm: number;
  anon: number;
}

async function status(p: EngineProcess): Promise<Status> {
  const text = await readFile(`/proc/${p.pid}/status`, 'utf8').catch(() => '');
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(text)?.[1] ?? 0) / 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM'), anon: kb('RssAnon') };
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until no engine's RSS moved by more than 0.5 MiB over 2 s (at most 20 s): start-up or the burst is over. */
async function settled(engines: EngineProcess[]): Promise<Status[]> {
  const samples: number[][] = [];
  const deadline = performance.now() + 20_000;
  for (;;) {
    const now = await Promise.all(engines.map(status));
    samples.push(now.map((s) => s.rss));
    const last = samples.slice(-5);
    const quiet =
      last.length === 5 && engines.every((_, i) => Math.max(...last.map((s) => s[i]!)) - Math.min(...last.map((s) => s[i]!)) < 0.5);
    if (quiet || performance.now() > deadline) return now;
    await pause(500);
  }
}

interface Round {
  flags: readonly string[];
  rate: number;
  idle: Status[];
  /** The highest RssAnon sampled every 100 ms while the events went through (VmHWM is the kernel's own peak of VmRSS). */
  loadedAnon: number[];
  after: Status[];
}

async function round(dir: string, url: string, flags: readonly string[]): Promise<Round> {
  const engines = CHAIN.map((n) => startWith(dir, n, flags));
  try {
    for (const e of engines) await whenConsuming(e);
    const idle = await settled(engines);
    const loadedAnon = idle.map((s) => s.anon);
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        for (const [i, s] of (await Promise.all(engines.map(status))).entries()) loadedAnon[i] = Math.max(loadedAnon[i]!, s.anon);
        await pause(100);
      }
    })();
    const rate = await publishAndDrain(url, 'canopsis.events', 'nagios.nagios1.check.resource.host', 'Engine_sink', N);
    sampling = false;
    await sampler;
    const after = await settled(engines);
    return { flags, rate, idle, loadedAnon, after };
  } finally {
    await Promise.all(engines.map((e) => stopEngine(e)));
  }
}

const mib = (x: number) => x.toFixed(0);
const mark = (v: number, goal: number) => (v <= goal ? mib(v) : `**${mib(v)}**`);

function table(r: Round): string {
  const rows = CHAIN.map((name, i) => {
    const idle = r.idle[i]!;
    const after = r.after[i]!;
    return `| ${name} | ${mark(idle.rss, GOAL_IDLE)} | ${mark(after.hwm, GOAL_LOADED)} | ${mib(after.rss)} | ${mib(idle.anon)} | ${mib(r.loadedAnon[i]!)} |`;
  });
  return `| engine | idle RSS | peak RSS (VmHWM) | RSS after | idle private | peak private |
| --- | ---: | ---: | ---: | ---: | ---: |
${rows.join('\n')}`;
}

export async function benchMemory(): Promise<void> {
  const vhost = await freshVhost('bench-memory');
  const dir = await tempDir('bench-memory');
  try {
    await writeRuntimePrefix(dir, {
      vhost: vhost.name,
      engines: chainConf(),
      files: {
        'etc/runtime.conf': `[store]\nbackend = embedded\nfile = ${dir}/var/lib/canopsis/canopsis.db\n\n[dispatchers]\nevent_dispatchers = database\n`,
      },
    });
    const tuned = (process.env.BENCH_MEMORY_FLAGS?.split(' ').filter(Boolean) ?? ENGINE_NODE_FLAGS) as readonly string[];
    const rounds: Round[] = [];
    for (const flags of [[], tuned]) {
      const r = await round(dir, vhost.url, flags);
      rounds.push(r);
      console.log(`${flags.join(' ') || 'V8 defaults'}: ${r.rate.toFixed(0)} events/s`);
      console.log(table(r));
    }
    const [plain, ours] = rounds as [Round, Round];
    const md = `## Engine memory: each engine of the default chain, idle and under 10,000 events

Measured ${new Date().toISOString().slice(0, 10)} with \`npm run bench\` (bench/memory.ts) on ${os.cpus().length} cores, Node ${process.versions.node}, the machine's RabbitMQ, the embedded store; the seven engines of a new install's chain (cleaner -> event_filter -> che -> pbehavior -> axe -> action -> perfdata), each its own process, prefetch 1000. Idle: once every engine consumes and its RSS has settled. Peak: VmHWM once ${N.toLocaleString('en')} check events have gone through the whole chain. After: settled again. Figures in MiB from /proc/<pid>/status: RSS counts the pages of the node binary a process touched (~45 MiB idle, ~50 under load, the same pages for every engine), private (RssAnon, sampled every 100 ms) only the process' own. Goals: idle RSS <= ${GOAL_IDLE}, under load <= ${GOAL_LOADED} (over a goal: **bold**).

With bin/engine-launcher's node flags (\`${ours.flags.join(' ') || 'none'}\`), ${ours.rate.toFixed(0)} events/s through the chain:

${table(ours)}

With V8's defaults (no flags), in the same run, ${plain.rate.toFixed(0)} events/s:

${table(plain)}`;
    await writeSection('memory', md);
  } finally {
    await vhost.remove();
    await removeDir(dir);
  }
}
