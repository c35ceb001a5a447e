import { readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import amqp from 'amqplib';
import ini from 'ini';
import { type ApiClient, apiClient } from '../runtime/web/client.js';
import { authkeyOf } from '../test/helpers/api.js';
import { buildInstall, isolatedPorts, removeDir, run, tempDir, waitFor } from '../test/helpers/index.js';
import { writeSection } from './report.js';

/*
 * ./build-install backup on a running appliance (root install, embedded
 * store): time and archive size with 10,000 and 100,000 alarms in the
 * store, and the pipeline's throughput while backups run compared with
 * without, in one run. The store is filled through the store API by the
 * service user, with copies of an alarm and an entity the pipeline made
 * (the events that then measure the throughput go through the pipeline).
 */

const BASE = 5890;
const FLOW = 20_000;

interface Made {
  file: string;
  bytes: number;
  seconds: number;
  store: { alarms: number; entities: number };
  /** Size of the SQLite copy inside the archive. */
  storeBytes: number;
}

/** Writes a script that copies a real alarm and entity of the store `n` times, and runs it as the service user. */
async function fill(dir: string, prefix: string, from: number, to: number): Promise<number> {
  const script = path.join(dir, `fill-${to}.mjs`);
  await writeFile(
    script,
    `const { SqliteStore } = await import(${JSON.stringify(path.join(prefix, 'lib/canopsis/current/dist/runtime/store/sqlite.js'))});
const s = new SqliteStore(${JSON.stringify(path.join(prefix, 'var/lib/canopsis/canopsis.db'))});
const alarms = s.collection('alarms'), entities = s.collection('entities');
const [a] = await alarms.find({ 'v.connector': 'bench' }, { limit: 1 });
const [e] = await entities.find({ type: 'resource' }, { limit: 1 });
const { key: _a, ...alarm } = a; const { key: _e, ...entity } = e;
// Varied as real ones are: times, outputs and counters differ from one alarm to the next.
for (let i = ${from}; i < ${to}; i++) {
  const ent = 'fill' + i + '/host-' + (i % 997);
  const t = alarm.t - Math.floor(Math.random() * 86400 * 30);
  const id = ent + ':' + t + ':1';
  const output = 'disk /var' + (i % 13) + ' is ' + (80 + Math.floor(Math.random() * 20)) + '% full (' + Math.random().toString(36).slice(2) + ')';
  await entities.put(ent, { ...entity, name: 'fill' + i, component: 'host-' + (i % 997), created: t, last_event_date: t + 60 });
  const step = (s) => ({ ...s, t, m: output });
  await alarms.put(id, { ...alarm, t, d: ent, v: { ...alarm.v, component: 'host-' + (i % 997), resource: 'fill' + i, creation_date: t, last_update_date: t + 60, last_event_date: t + 60, output, events_count: 1 + (i % 50), state: step(alarm.v.state), status: step(alarm.v.status), steps: alarm.v.steps.map(step) }, timing: { state_changes: [t], non_ok_since: t } });
}
await s.close();
`,
    { mode: 0o644 },
  );
  const t = performance.now();
  const r = await run('setpriv', ['--reuid', 'canopsis', '--regid', 'canopsis', '--init-groups', process.execPath, script]);
  if (r.exitCode !== 0) throw new Error(`filling the store: ${r.all}`);
  return (performance.now() - t) / 1000;
}

export async function benchBackup(): Promise<void> {
  const dir = await tempDir('bench-backup');
  const prefix = path.join(dir, 'canopsis');
  let api: ApiClient | undefined;
  try {
    const inst = await buildInstall([
      'install',
      '--prefix',
      prefix,
      '--yes',
      '--start',
      ...isolatedPorts(BASE, `cpsbenchbk${BASE}@localhost`),
    ]);
    if (inst.exitCode !== 0) throw new Error(inst.all);
    const key = await authkeyOf(prefix);
    api = await apiClient(prefix);
    const count = async () => {
      const r = await api!.fetch('/alarms?limit=1', { headers: { 'x-canopsis-authkey': key } });
      return ((await r.json()) as { meta: { total_count: number } }).meta.total_count;
    };
    const m = ini.parse(await readFile(path.join(prefix, 'etc', 'amqp.conf'), 'utf8')).master as Record<string, string>;
    const conn = await amqp.connect(
      `amqp://${encodeURIComponent(m.userid!)}:${encodeURIComponent(m.password!)}@127.0.0.1:${m.port}/${encodeURIComponent(m.virtual_host!)}`,
    );
    const ch = await conn.createConfirmChannel();
    const publish = async (tag: string, n: number) => {
      for (let i = 0; i < n; i++) {
        const event = {
          connector: 'bench',
          connector_name: 'backup',
          event_type: 'check',
          source_type: 'resource',
          component: tag,
          resource: `r${i}`,
          state: 2,
          output: 'disk /var is 97% full',
        };
        ch.publish('canopsis.events', 'bench', Buffer.from(JSON.stringify(event)), { persistent: true });
        if (i % 500 === 499) await ch.waitForConfirms();
      }
      await ch.waitForConfirms();
    };
    const backup = async (): Promise<Made> => {
      const r = await buildInstall(['backup', '--prefix', prefix, '--json']);
      if (r.exitCode !== 0) throw new Error(`backup: ${r.all}`);
      return JSON.parse(r.stdout) as Made;
    };
    /** Events through the pipeline, timed from the first publish to the last alarm; `meanwhile` runs alongside. */
    const flow = async (tag: string, meanwhile?: (done: () => boolean) => Promise<number>) => {
      const base = await count();
      let finished = false;
      const t = performance.now();
      const side = meanwhile?.(() => finished);
      await publish(tag, FLOW);
      await waitFor(`${FLOW} events of ${tag} as alarms`, async () => (await count()) >= base + FLOW, 900_000, 200);
      const seconds = (performance.now() - t) / 1000;
      finished = true;
      return { rate: FLOW / seconds, seconds, backups: (await side) ?? 0 };
    };

    // Templates made by the pipeline itself.
    await publish('seed', 10);
    await waitFor('the seed alarms', async () => (await count()) >= 10, 120_000, 200);
    const sizes: Array<{ alarms: number; fill: number; made: Made }> = [];
    for (const target of [10_000, 100_000]) {
      const have = await count();
      const fillSeconds = await fill(dir, prefix, have, target);
      const made = await backup();
      sizes.push({ alarms: made.store.alarms, fill: fillSeconds, made });
      console.log(`${made.store.alarms} alarms: backup ${made.seconds.toFixed(1)} s, ${(made.bytes / 1024 ** 2).toFixed(1)} MiB`);
    }
    const without = await flow('plain');
    const during = await flow('during', async (done) => {
      let n = 0;
      while (!done()) {
        await backup();
        n++;
      }
      return n;
    });
    await ch.close();
    await conn.close();
    const md = `## Backup of a running appliance

Measured ${new Date().toISOString().slice(0, 10)} with \`npm run bench backup\` (bench/backup.ts) on ${os.cpus().length} cores, as root, embedded store, the whole stack running. The store is filled by the service user through the store API with copies of an alarm and an entity the pipeline made, their times, outputs and counters varied (filling took ${sizes.map((s) => `${s.fill.toFixed(0)} s`).join(' and ')}); the events that measure throughput go through the pipeline (published to the broker, cleaner -> event_filter -> che -> axe -> perfdata).

| alarms in the store | backup time | store copy (SQLite) | archive (gzip) |
| ---: | ---: | ---: | ---: |
${sizes.map((s) => `| ${s.made.store.alarms.toLocaleString('en-US')} (${s.made.store.entities.toLocaleString('en-US')} entities) | ${s.made.seconds.toFixed(1)} s | ${(s.made.storeBytes / 1024 ** 2).toFixed(1)} MiB | ${(s.made.bytes / 1024 ** 2).toFixed(1)} MiB |`).join('\n')}

The time is the whole command (lock, etc/, the SQLite copy by the service user, its integrity check, sha256, gzip, retention).

Pipeline throughput, ${FLOW.toLocaleString('en-US')} events each, one after the other in the same run (store of ~${Math.round(sizes.at(-1)!.alarms / 1000)}k alarms):

| | events/s | seconds |
| --- | ---: | ---: |
| no backup | ${without.rate.toFixed(0)} | ${without.seconds.toFixed(1)} |
| backups back to back (${during.backups} of them) | ${during.rate.toFixed(0)} | ${during.seconds.toFixed(1)} |

The copy is one step of SQLite's backup API under a read transaction: in WAL mode the engines keep writing meanwhile; what slows them is the CPU and disk the copy, the gzip and the checksums take on a 2-core machine.`;
    console.log(md);
    await writeSection('backup', md);
  } finally {
    await api?.close();
    await run(path.join(prefix, 'bin', 'hypcontrol'), ['stop'], { env: { CPS_PREFIX: prefix } });
    await run('pkill', ['-9', '-f', prefix]);
    await removeDir(dir);
  }
}
