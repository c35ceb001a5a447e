import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import amqp from 'amqplib';
import ini from 'ini';
import { type ApiClient, apiClient } from '../../runtime/web/client.js';
import { authkeyOf } from '../helpers/api.js';
import { buildInstall, isolatedPorts, removeDir, run, tempDir, waitFor } from '../helpers/index.js';

/*
 * Backup and restore of a running appliance installed as root with
 * --start: a connector publishes 10,000 events while `backup` runs (the
 * pipeline keeps going: the largest gap between alarms appearing during the
 * backup is measured and reported), then the stack is stopped, the store
 * file deleted and the backup restored: every alarm and entity of backup
 * time is back, read through the API, and new events become alarms.
 */

const BASE = 5920;
const EVENTS = 10_000;
const TIMEOUT = 900_000;

let dir: string;
let prefix: string;
let api: ApiClient | undefined;
let key: string;
const env = () => ({ CPS_PREFIX: prefix });

before(async () => {
  dir = await tempDir('backup-e2e');
  prefix = path.join(dir, 'canopsis');
});

after(async () => {
  await api?.close();
  await run(path.join(prefix, 'bin', 'hypcontrol'), ['stop'], { env: env() });
  await run('pkill', ['-9', '-f', prefix]);
  await removeDir(dir);
});

async function get<T>(route: string): Promise<T> {
  api ??= await apiClient(prefix);
  const r = await api.fetch(route, { headers: { 'x-canopsis-authkey': key } });
  assert.equal(r.status, 200, `${route}: ${r.status}`);
  return (await r.json()) as T;
}

const alarmCount = async () => (await get<{ meta: { total_count: number } }>('/alarms?limit=1')).meta.total_count;

/** Every id of a listing, page after page. */
async function ids(route: 'alarms' | 'entities'): Promise<Set<string>> {
  const out = new Set<string>();
  for (let page = 1; ; page++) {
    const r = await get<{ data: Array<{ _id: string }>; meta: { page_count: number } }>(`/${route}?limit=10000&page=${page}`);
    for (const d of r.data) out.add(d._id);
    if (page >= r.meta.page_count) return out;
  }
}

/** The largest interval between two increases of the alarm count that overlaps [from, to] (ms), from samples taken meanwhile. */
function largestGap(samples: Array<{ t: number; n: number }>, from: number, to: number): number {
  const rises = samples.filter((s, i) => i > 0 && s.n > samples[i - 1]!.n).map((s) => s.t);
  let gap = 0;
  for (let i = 1; i < rises.length; i++) if (rises[i - 1]! <= to && rises[i]! >= from) gap = Math.max(gap, rises[i]! - rises[i - 1]!);
  return gap;
}

test('backup while 10,000 events flow, then stop, delete the store, restore: alarms and entities of backup time are back and new events are processed', {
  timeout: TIMEOUT,
}, async (t) => {
  const inst = await buildInstall(
    ['install', '--prefix', prefix, '--yes', '--start', ...isolatedPorts(BASE, `cpsbke2e${BASE}@localhost`)],
    { timeout: TIMEOUT },
  );
  assert.equal(inst.exitCode, 0, inst.all);
  key = await authkeyOf(prefix);

  const m = ini.parse(await readFile(path.join(prefix, 'etc', 'amqp.conf'), 'utf8')).master as Record<string, string>;
  const conn = await amqp.connect(
    `amqp://${encodeURIComponent(m.userid!)}:${encodeURIComponent(m.password!)}@127.0.0.1:${m.port}/${encodeURIComponent(m.virtual_host!)}`,
  );
  const base = await alarmCount();
  const samples: Array<{ t: number; n: number }> = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      samples.push({ t: performance.now(), n: await alarmCount() });
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  try {
    const ch = await conn.createConfirmChannel();
    const publisher = (async () => {
      for (let i = 0; i < EVENTS; i++) {
        const event = {
          connector: 'bke2e',
          connector_name: 'backup',
          event_type: 'check',
          source_type: 'resource',
          component: 'bk',
          resource: `r${i}`,
          state: 2,
          output: 'disk full',
        };
        ch.publish('canopsis.events', 'bke2e', Buffer.from(JSON.stringify(event)), { persistent: true });
        if (i % 500 === 499) await ch.waitForConfirms();
      }
      await ch.waitForConfirms();
    })();
    await waitFor('the first 2,000 events as alarms', async () => (await alarmCount()) >= base + 2000, 300_000, 200);
    const before = { alarms: await ids('alarms'), entities: await ids('entities') };
    const t0 = performance.now();
    const backup = await buildInstall(['backup', '--prefix', prefix, '--json']);
    const t1 = performance.now();
    assert.equal(backup.exitCode, 0, backup.all);
    const made = JSON.parse(backup.stdout) as { file: string; store: { alarms: number; entities: number } };
    await publisher;
    await waitFor('all 10,000 events as alarms', async () => (await alarmCount()) >= base + EVENTS, 600_000, 500);
    sampling = false;
    await sampler;
    await ch.close();

    const during = largestGap(samples, t0, t1);
    const outside = Math.max(
      largestGap(
        samples.filter((s) => s.t < t0),
        0,
        t0,
      ),
      largestGap(
        samples.filter((s) => s.t > t1),
        t1,
        Infinity,
      ),
    );
    const report = `backup took ${((t1 - t0) / 1000).toFixed(1)} s with events flowing (${made.store.alarms} alarms, ${made.store.entities} entities in it); largest gap between alarms appearing: ${during.toFixed(0)} ms during the backup, ${outside.toFixed(0)} ms outside it`;
    t.diagnostic(report);
    console.log(`# ${report}`);
    // A backup that blocked the engines' writes would show as a gap as long as itself.
    assert.ok(during < 5_000, report);
    assert.ok(
      made.store.alarms >= before.alarms.size && made.store.alarms < base + EVENTS,
      `the backup holds what was there when it ran: ${report}`,
    );

    const final = await ids('alarms');
    await api?.close();
    api = undefined;
    assert.equal((await run(path.join(prefix, 'bin', 'hypcontrol'), ['stop'], { env: env() })).exitCode, 0);
    await rm(path.join(prefix, 'var', 'lib', 'canopsis', 'canopsis.db'));

    const restore = await buildInstall(['restore', made.file, '--prefix', prefix, '--yes'], { timeout: TIMEOUT });
    assert.equal(restore.exitCode, 0, restore.all);
    assert.match(restore.stdout, /store put back: \d+ entities, \d+ alarms/);
    assert.match(restore.stdout, /restored .* from the backup of 0\.4\.0 made .*; running and probed/);

    const restored = { alarms: await ids('alarms'), entities: await ids('entities') };
    const missing = (a: Set<string>, b: Set<string>) => [...a].filter((x) => !b.has(x));
    assert.deepEqual(missing(before.alarms, restored.alarms), [], 'every alarm there before the backup is back');
    assert.deepEqual(missing(before.entities, restored.entities), [], 'every entity there before the backup is back');
    assert.equal(restored.alarms.size, made.store.alarms, 'exactly the alarms of the backup');
    assert.ok(restored.alarms.size < final.size, 'what came after the backup is not there');

    const sent = await run(path.join(prefix, 'bin', 'send-event'), ['--component', 'after-restore', '--resource', 'disk', '--state', '2'], {
      env: env(),
    });
    assert.equal(sent.exitCode, 0, sent.all);
    await waitFor(
      'a new event as an alarm after the restore',
      async () =>
        (await get<{ data: unknown[] }>(`/alarms?opened=true&entity=${encodeURIComponent('disk/after-restore')}`)).data.length === 1,
      120_000,
      500,
    );
  } finally {
    sampling = false;
    await sampler.catch(() => undefined);
    await conn.close().catch(() => undefined);
  }
});
