import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { EntityAlarms } from '../../runtime/alarm/model.js';
import { DEFAULT_REASON, PBEHAVIORS, type PBehavior } from '../../runtime/pbehavior/model.js';
import { SqliteStore } from '../../runtime/store/sqlite.js';
import {
  type EngineProcess,
  freshVhost,
  publishEvents,
  startEngine,
  stopEngine,
  type Vhost,
  whenConsuming,
  writeRuntimePrefix,
} from '../helpers/broker.js';
import { removeDir, tempDir, waitFor } from '../helpers/index.js';

/*
 * The pbehavior engine between che and axe, on the real broker: a weekly
 * maintenance window (RRULE FREQ=WEEKLY) makes an alarm born in it, leave it
 * when the window closes and enter it again a week later. The engine's
 * clock is moved with CPS_CLOCK_OFFSET (restarting it), the only way to see
 * a weekly window without waiting a week. Canopsis' behaviour:
 * release-22.10 lib/canopsis/pbehavior (type_resolver.go) and
 * partial_update_alarm.go PartialUpdatePbhEnter/PbhLeave.
 */

let vhost: Vhost;
let dir: string;
let store: SqliteStore;
const procs: EngineProcess[] = [];
let pbh: EngineProcess | undefined;

const CONF = `
[engine:che]
event_processing=canopsis.che.process.event_processing
next=pbehavior
exchange=canopsis.events

[engine:pbehavior]
event_processing=canopsis.pbehavior.process.event_processing
beat_processing=canopsis.pbehavior.process.beat_processing
beat_interval=0.2
next=axe

[engine:axe]
event_processing=canopsis.axe.process.event_processing
`;

const HOUR = 3600;
const now = Math.floor(Date.now() / 1000);
// The window opened half an hour ago and lasts two hours, every week.
const tstart = now - HOUR / 2;

async function startPbehavior(offset: number): Promise<void> {
  if (pbh) await stopEngine(pbh);
  process.env.CPS_CLOCK_OFFSET = String(offset);
  pbh = startEngine(dir, 'pbehavior');
  delete process.env.CPS_CLOCK_OFFSET;
  await whenConsuming(pbh);
}

before(async () => {
  vhost = await freshVhost('pbh');
  dir = await tempDir('pbh');
  await writeRuntimePrefix(dir, {
    vhost: vhost.name,
    engines: CONF,
    files: {
      'etc/runtime.conf': `[store]\nbackend = embedded\nfile = ${dir}/var/lib/canopsis/canopsis.db\n\n[dispatchers]\nevent_dispatchers =\n\n[alarms]\nresolve_delay = 100000\n`,
    },
  });
  store = new SqliteStore(`${dir}/var/lib/canopsis/canopsis.db`);
  const weekly: PBehavior = {
    author: 'root',
    name: 'weekly works',
    enabled: true,
    tstart,
    tstop: tstart + 2 * HOUR,
    rrule: 'FREQ=WEEKLY',
    exdates: [],
    exceptions: [],
    type: 'default-maintenance',
    reason: DEFAULT_REASON.id,
    entity_pattern: [[{ field: 'component', cond: { type: 'eq', value: 'web1' } }]],
    color: '',
    comments: [],
    created: now,
    updated: now,
  };
  await store.collection<PBehavior>(PBEHAVIORS).put('pbh-weekly', weekly);
  for (const name of ['che', 'axe']) {
    const p = startEngine(dir, name);
    procs.push(p);
    await whenConsuming(p);
  }
  await startPbehavior(0);
});

after(async () => {
  if (pbh) await stopEngine(pbh);
  await Promise.all(procs.map((p) => stopEngine(p)));
  await store?.close();
  await vhost.remove();
  await removeDir(dir);
});

const alarmOf = async (entity: string) => (await store.collection<EntityAlarms>('entity_alarms').get(entity))?.current ?? undefined;
const stepTypes = async (entity: string) => ((await alarmOf(entity))?.v.steps ?? []).map((s) => s._t);

test('a weekly maintenance window: the alarm is born in it, leaves it when it closes, enters it again a week later', async () => {
  const check = (resource: string, component: string) => ({
    connector: 'nagios',
    connector_name: 'n1',
    event_type: 'check',
    source_type: 'resource',
    component,
    resource,
    state: 2,
    output: 'full',
    timestamp: now,
  });
  await publishEvents(vhost.url, [check('disk', 'web1'), check('disk', 'db1')]);
  const born = await waitFor('the alarms', async () => {
    const [a, b] = [await alarmOf('disk/web1'), await alarmOf('disk/db1')];
    return a && b ? { a, b } : undefined;
  });
  assert.deepEqual(
    born.a.v.steps.map((s) => s._t),
    ['stateinc', 'statusinc', 'pbhenter'],
  );
  assert.equal(born.a.v.pbehavior_info?.id, 'pbh-weekly');
  assert.equal(born.a.v.pbehavior_info?.canonical_type, 'maintenance');
  assert.equal(born.b.v.pbehavior_info, undefined, 'the pattern names web1 only');

  // Two hours later the window is closed: the recompute job of the next beat takes the alarm out.
  await startPbehavior(2 * HOUR);
  await waitFor('pbhleave', async () => (await stepTypes('disk/web1')).at(-1) === 'pbhleave', 20_000);
  assert.equal((await alarmOf('disk/web1'))?.v.pbehavior_info, undefined);

  // A week after the first opening, it is open again.
  await startPbehavior(7 * 24 * HOUR);
  await waitFor('pbhenter again', async () => (await stepTypes('disk/web1')).at(-1) === 'pbhenter', 20_000);
  assert.deepEqual(await stepTypes('disk/web1'), ['stateinc', 'statusinc', 'pbhenter', 'pbhleave', 'pbhenter']);
  assert.deepEqual(await stepTypes('disk/db1'), ['stateinc', 'statusinc'], 'db1 never entered');
  // The engine logs what it sent once its loop is done: that can come just after axe applied the event.
  await waitFor('the recompute logged', async () => /alarms entering or leaving a pbehavior/.test(pbh!.logs()));
});
