import os from 'node:os';
import path from 'node:path';
import { Supervisor } from '../installer/control/supervisor.js';
import type { Timing } from '../installer/timing.js';
import { currentBundle, trustIn } from '../test/helpers/bundles.js';
import { buildInstall, removeDir, run, tempDir } from '../test/helpers/index.js';
import { writeSection } from './report.js';

/*
 * What an operator waits for when nothing (or little) is to be done: a
 * first install with the dependencies there (from the checkout, and from a
 * bundle), the same install run again, and the same bundle given again to
 * `update` on a running appliance, which must restart nothing. Each with the
 * installer's own step times (--json carries them), to see where the time
 * goes; supervisord's pids before and after the update show what restarted.
 */

const BASE = 6020;
const SETS = [
  `rabbitmq.port=${BASE}`,
  `rabbitmq.dist_port=${BASE + 1}`,
  `rabbitmq.management_port=${BASE + 2}`,
  `webserver.port=${BASE + 3}`,
  `store.mongodb_port=${BASE + 4}`,
  `rabbitmq.node_name=cpsbench${BASE}@localhost`,
].flatMap((s) => ['--set', s]);

/** The figures of issue 18 before this work, and its goals (seconds). */
const BEFORE = { update: 44.5, rerun: 2.3, fresh: 8.1 };
const GOAL = { update: 5, rerun: 1, fresh: 5 };

interface Measured {
  seconds: number;
  timings: Timing[];
  answer: Record<string, unknown>;
}

/** One build-install run, its wall time and its --json answer (which holds the step times). */
async function measure(args: string[]): Promise<Measured> {
  const t = performance.now();
  const r = await buildInstall([...args, '--json']);
  const seconds = (performance.now() - t) / 1000;
  if (r.exitCode !== 0) throw new Error(`build-install ${args.join(' ')}: ${r.all}`);
  const answer = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, unknown> & { timings?: Timing[] };
  return { seconds, timings: answer.timings ?? [], answer };
}

/** supervisord's processes and their pids: equal before and after, nothing restarted. */
async function pids(prefix: string): Promise<Map<string, string>> {
  const all = await new Supervisor(prefix).status();
  return new Map(all.map((p) => [p.name, /pid (\d+)/.exec(p.description)?.[1] ?? p.state]));
}

const s = (n: number) => n.toFixed(2);

/** The steps of a run as table rows; parts (a validator, the release copy) indented under their step. */
function stepRows(timings: Timing[], depth = 0): string[] {
  return timings.flatMap((t) => [
    `| ${'&nbsp;&nbsp;&nbsp;&nbsp;'.repeat(depth)}${t.step} | ${s(t.ms / 1000)} |`,
    ...stepRows(t.parts ?? [], depth + 1),
  ]);
}

const stepTable = (title: string, m: Measured) =>
  `**${title}** (${s(m.seconds)} s wall, as the process saw itself: ${s(m.timings.reduce((n, t) => n + t.ms, 0) / 1000)} s)

| step | seconds |
| --- | ---: |
${stepRows(m.timings).join('\n')}`;

export async function benchInstall(): Promise<void> {
  const dir = await tempDir('bench-install');
  const running = path.join(dir, 'running');
  try {
    const fresh = path.join(dir, 'fresh');
    const first = await measure(['install', '--prefix', fresh, ...SETS]);
    const again = await measure(['install', '--prefix', fresh]);
    if (again.answer.written !== 0) throw new Error(`the re-run wrote ${String(again.answer.written)} files`);

    const { file: bundle, publicKey } = await currentBundle(dir);
    const fromBundle = await measure([
      'install',
      '--bundle',
      bundle,
      '--prefix',
      path.join(dir, 'bundle'),
      ...SETS,
      '--trusted-key',
      publicKey,
    ]);

    const started = await buildInstall([
      'install',
      '--bundle',
      bundle,
      '--prefix',
      running,
      ...SETS,
      '--start',
      '--trusted-key',
      publicKey,
    ]);
    if (started.exitCode !== 0) throw new Error(started.all);
    await trustIn(running, publicKey);
    const before = await pids(running);
    const update = await measure(['update', '--bundle', bundle, '--prefix', running]);
    const after = await pids(running);
    const restarted = [...before].filter(([name, pid]) => after.get(name) !== pid).map(([name]) => name);

    const row = (what: string, key: keyof typeof GOAL, m: Measured) =>
      `| ${what} | ${BEFORE[key]} | **${s(m.seconds)}** | <= ${GOAL[key]} | ${m.seconds <= GOAL[key] ? 'met' : 'missed'} |`;
    const md = `## Installs and updates with little or nothing to do

Measured ${new Date().toISOString().slice(0, 10)} with \`npm run bench install\` (bench/install.ts) on ${os.cpus().length} cores, as root, the stack's ports from ${BASE}. Wall time of the whole command (Node's start included); "before" is what issue 18 measured.

| figure | before | now (s) | goal | |
| --- | ---: | ---: | ---: | --- |
${row('no-change `update` of a running appliance (the same bundle again)', 'update', update)}
${row('no-change re-run of `./build-install install`', 'rerun', again)}
${row('fresh install from the checkout, dependencies there, no start', 'fresh', first)}
| fresh install from a signed bundle, no start | | ${s(fromBundle.seconds)} | | |

The no-change update restarted ${restarted.length ? `**${restarted.join(', ')}**` : 'nothing'}: supervisord's ${before.size} processes kept their pids. It reads the bundle's signed manifest and stops (the release was placed from that very bundle), asks the release about migrations, snapshots, runs the release's installer, which renders, finds every validator's verdict unchanged and writes nothing, and so restarts nothing. \`--timings\` prints the same tables for any run.

${stepTable('No-change update', update)}

${stepTable('No-change re-run of install', again)}

${stepTable('Fresh install from the checkout', first)}

${stepTable('Fresh install from a bundle', fromBundle)}`;
    console.log(md);
    await writeSection('install', md);
  } finally {
    await run(path.join(running, 'bin', 'hypcontrol'), ['stop'], { env: { CPS_PREFIX: running } });
    await removeDir(dir);
  }
}
