import os from 'node:os';
import { DEFAULT_REASON, PBEHAVIORS, type PBehavior } from '../runtime/pbehavior/model.js';
import { SCENARIOS, type Scenario } from '../runtime/scenario/model.js';
import { SqliteStore } from '../runtime/store/sqlite.js';
import { freshVhost, writeRuntimePrefix } from '../test/helpers/broker.js';
import { removeDir, tempDir } from '../test/helpers/index.js';
import { chainRound, median, rawRound } from './pipeline.js';
import { writeSection } from './report.js';

/*
 * The chain with the operator engines in it (cleaner -> che -> pbehavior ->
 * axe -> action), against cleaner -> che -> axe and the raw amqplib 3-hop
 * relay, alternating in one run. A weekly pbehavior covers one component of
 * ten (its alarms are born in maintenance) and a scenario acks the alarms of
 * another on creation (an event back to axe for each): both engines work,
 * on real rules.
 */

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

const ENGINES = (withOperators: boolean) => `
[engine:cleaner]
event_processing=canopsis.cleaner.process.event_processing
next=che
exchange=canopsis.events

[engine:che]
event_processing=canopsis.che.process.event_processing
next=${withOperators ? 'pbehavior' : 'axe'}
${
  withOperators
    ? `
[engine:pbehavior]
event_processing=canopsis.pbehavior.process.event_processing
next=axe
`
    : ''
}
[engine:axe]
event_processing=canopsis.axe.process.event_processing
next=${withOperators ? 'action' : 'sink'}
${
  withOperators
    ? `
[engine:action]
event_processing=canopsis.action.process.event_processing
next=sink
`
    : ''
}`;

async function prefix(tag: string, vhost: string, withOperators: boolean): Promise<string> {
  const dir = await tempDir(tag);
  await writeRuntimePrefix(dir, {
    vhost,
    engines: ENGINES(withOperators),
    files: {
      'etc/runtime.conf': `[store]\nbackend = embedded\nfile = ${dir}/var/lib/canopsis/canopsis.db\n\n[dispatchers]\nevent_dispatchers =\n`,
    },
  });
  if (!withOperators) return dir;
  const store = new SqliteStore(`${dir}/var/lib/canopsis/canopsis.db`);
  const now = Math.floor(Date.now() / 1000);
  const pbh: PBehavior = {
    author: 'bench',
    name: 'weekly works',
    enabled: true,
    tstart: now - 3600,
    tstop: now + 3600,
    rrule: 'FREQ=WEEKLY',
    exdates: [],
    exceptions: [],
    type: 'default-maintenance',
    reason: DEFAULT_REASON.id,
    entity_pattern: [[{ field: 'component', cond: { type: 'eq', value: 'host0' } }]],
    color: '#000000',
    comments: [],
    created: now,
    updated: now,
  };
  await store.collection<PBehavior>(PBEHAVIORS).put('bench-pbh', pbh);
  const scenario: Scenario = {
    name: 'ack host1',
    author: 'bench',
    enabled: true,
    priority: 1,
    triggers: ['create'],
    disable_during_periods: [],
    actions: [
      {
        type: 'ack',
        parameters: { output: 'auto' },
        comment: '',
        entity_pattern: [[{ field: 'component', cond: { type: 'eq', value: 'host1' } }]],
        drop_scenario_if_not_matched: true,
        emit_trigger: false,
      },
    ],
    created: now,
    updated: now,
  };
  await store.collection<Scenario>(SCENARIOS).put('bench-scenario', scenario);
  await store.close();
  return dir;
}

export async function benchOperator(): Promise<void> {
  const vhost = await freshVhost('bench-operator');
  const plain = await prefix('bench-plain', vhost.name, false);
  const operators = await prefix('bench-operators', vhost.name, true);
  try {
    const raw: number[] = [];
    const base: number[] = [];
    const full: number[] = [];
    let rss: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      raw.push(await rawRound(vhost.url));
      base.push((await chainRound(plain, vhost.url, ['cleaner', 'che', 'axe'])).rate);
      const o = await chainRound(operators, vhost.url, ['cleaner', 'che', 'pbehavior', 'axe', 'action']);
      full.push(o.rate);
      rss = o.rssMiB;
      console.log(
        `round ${i + 1}: raw ${raw[i]!.toFixed(0)}, cleaner->che->axe ${base[i]!.toFixed(0)}, with pbehavior and action ${full[i]!.toFixed(0)} ev/s`,
      );
    }
    const row = (name: string, xs: number[]) =>
      `| ${name} | ${median(xs).toFixed(0)} | ${(median(xs) / median(raw)).toFixed(2)} | ${xs.map((x) => x.toFixed(0)).join(', ')} |`;
    const md = `## The chain with the operator engines (pbehavior, action)

Measured ${new Date().toISOString().slice(0, 10)} with \`npm run bench operator\` (bench/operator.ts) on ${os.cpus().length} cores, Node ${process.versions.node}, the machine's RabbitMQ; ${process.env.BENCH_EVENTS ?? 20000} check events per run (bench/pipeline.ts), ${ROUNDS} alternating rounds. A weekly maintenance window covers one component of ten and a scenario acks on creation the alarms of another (one more event through axe each).

| chain | median events/s | / raw relay | rounds |
| --- | ---: | ---: | --- |
${row('raw amqplib relay x3', raw)}
${row('cleaner -> che -> axe', base)}
${row('cleaner -> che -> pbehavior -> axe -> action', full)}

Peak RSS of cleaner, che, pbehavior, axe, action in the last round: ${rss.map((x) => `${x.toFixed(0)} MiB`).join(', ')}.`;
    console.log(md);
    await writeSection('operator', md);
  } finally {
    await vhost.remove();
    await removeDir(plain);
    await removeDir(operators);
  }
}
