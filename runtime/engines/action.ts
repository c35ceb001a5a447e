import { ALARMS, type StoredAlarm } from '../alarm/model.js';
import { type DurationWithUnit, durationSeconds } from '../durations.js';
import { entityOfEvent } from '../pbehavior/pattern.js';
import { PbehaviorOperationFailed, putOperationPbehavior } from '../pbehavior/store.js';
import { DELAYED_SCENARIOS, type DelayedRun, SCENARIOS, type Scenario } from '../scenario/model.js';
import { type Planned, plan } from '../scenario/plan.js';
import { callWebhook, WebhookFailed } from '../scenario/webhook.js';
import { cached } from '../store/versions.js';
import { type EngineHandle, type Event, RejectedEvent, type Routed, routeTo, type TaskContext, type TaskModule } from '../tasks/types.js';
import { ENTITIES, type Entity } from './che.js';

/*
 * action, after axe as in Canopsis 4 (engine-action): axe's outputs name
 * the alarm and the scenario triggers of what changed (alarm_id,
 * alarm_triggers); the scenarios those triggers select run their actions
 * in order. An action on the alarm (ack, cancel, changestate...) is an
 * event routed back to axe, the only writer of alarms, marked with its
 * scenario so that it triggers other scenarios only when emit_trigger says
 * so. A webhook is called here, retried as its scenario says; the ticket it
 * answers goes to axe as a declareticketwebhook event. A webhook that still
 * fails dead-letters the event with the reason (bin/dead-letters replay
 * runs the scenarios again), and nothing of that event is published.
 */

async function scenarios(engine: EngineHandle): Promise<Array<Scenario & { key: string }>> {
  const store = await engine.store();
  return cached(engine.state, SCENARIOS, store, () => store.collection<Scenario>(SCENARIOS).find({ enabled: true }), 300);
}

const seconds = (d: DurationWithUnit | undefined, fallback: number) => (d ? durationSeconds(d) : fallback);

/** The event an action on the alarm becomes, addressed to the alarm's entity. */
function actionEvent(a: StoredAlarm, p: Planned, type: string, extra: Event): Event {
  return {
    connector: a.v.connector,
    connector_name: a.v.connector_name,
    event_type: type,
    source_type: a.v.resource ? 'resource' : 'component',
    component: a.v.component,
    ...(a.v.resource ? { resource: a.v.resource } : {}),
    author: p.author || 'system',
    initiator: 'system',
    output: p.action.parameters.output ?? '',
    timestamp: Math.floor(Date.now() / 1000),
    scenario: p.scenario,
    scenario_emit_trigger: p.action.emit_trigger,
    ...extra,
  };
}

/** The job on Dispatcher_action that sends due delayed runs back through the action engine. */
export const DELAYED_JOB = { task: 'delayed' } as const;

/** Worker 0, on its beat: a job when some delayed run is due (one process of the engine type takes it). */
async function sendDelayedJob(engine: EngineHandle): Promise<void> {
  if (engine.worker !== 0) return;
  const due = await (await engine.store()).collection<DelayedRun>(DELAYED_SCENARIOS).count({ due: { $lte: Date.now() / 1000 } });
  if (due > 0) await engine.dispatch(DELAYED_JOB);
}

const WAKE = 'action.delayed.wake';

/**
 * The process that puts a delayed run also sends the job when it falls
 * due, so a delay is kept to the second rather than to the beat; the
 * beat's check stays, for runs whose process stopped meanwhile.
 */
function wakeAt(engine: EngineHandle, due: number, ctx: TaskContext): void {
  const cur = engine.state.get(WAKE) as { at: number; timer: NodeJS.Timeout } | undefined;
  if (cur && cur.at <= due) return;
  if (cur) clearTimeout(cur.timer);
  const timer = setTimeout(
    () => {
      engine.state.delete(WAKE);
      engine.dispatch(DELAYED_JOB).catch((e: Error) => ctx.logger.warn({ err: e.message }, 'delayed job not sent; the beat tries again'));
    },
    Math.max(0, due * 1000 - Date.now()) + 20,
  );
  timer.unref();
  engine.state.set(WAKE, { at: due, timer });
}

/**
 * Due runs go back into Engine_action as events naming their scenario, so a
 * webhook that fails then is dead-lettered and replayable like any other.
 * Sent, then forgotten: a crash between the two runs it twice (at least once).
 */
async function runDelayed(engine: EngineHandle, ctx: TaskContext): Promise<void> {
  const c = (await engine.store()).collection<DelayedRun>(DELAYED_SCENARIOS);
  const due = await c.find({ due: { $lte: Date.now() / 1000 } }, { sort: [['due', 1]], limit: 100 });
  for (const d of due) {
    await engine.emit({ ...d.event, delayed_scenario: d.scenario }, [engine.name]);
    await c.delete({ key: d.key });
  }
  if (due.length) ctx.logger.info({ runs: due.length }, 'delayed scenarios due');
}

export const action: TaskModule = {
  name: 'canopsis.action.process',
  beat_processing: async (engine, ctx) => {
    await sendDelayedJob(engine).catch((e: Error) =>
      ctx.logger.warn({ err: e.message }, 'delayed job not sent; the next beat tries again'),
    );
  },
  consume_dispatcher: async (engine, job, ctx) => {
    if ((job as { task?: unknown } | null)?.task === DELAYED_JOB.task) return runDelayed(engine, ctx);
    ctx.logger.warn({ job }, 'action: unknown dispatcher job, ignored');
  },
  event_processing: async (engine, event: Event, ctx) => {
    const triggers = Array.isArray(event.alarm_triggers) ? (event.alarm_triggers as string[]) : [];
    // A delayed run coming back (see runDelayed): that scenario's actions, and the event goes no further.
    const only = typeof event.delayed_scenario === 'string' ? event.delayed_scenario : undefined;
    // What a scenario did runs other scenarios only when it says so (emit_trigger).
    if ((triggers.length === 0 && !only) || typeof event.alarm_id !== 'string' || (event.scenario && event.scenario_emit_trigger !== true))
      return event;
    const passOn: Array<Event | Routed> = only ? [] : [event];
    const list = await scenarios(engine);
    if (list.length === 0) return passOn;
    const store = await engine.store();
    const stored = await store.collection<StoredAlarm>(ALARMS).get(event.alarm_id);
    if (!stored) return passOn;
    const { key: alarmId, ...alarm } = stored;
    const all = plan(list, triggers, entityOfEvent(event), alarm, Date.now() / 1000, only);
    // A scenario with a delay runs later, from the event as it is now (one waiting run per scenario and event).
    const delayed = all.filter((p) => p.delay > 0);
    for (const scenario of new Set(delayed.map((p) => p.scenario))) {
      const delay = delayed.find((p) => p.scenario === scenario)!.delay;
      const { alarm_triggers: _t, ...rest } = event;
      const due = Date.now() / 1000 + delay;
      await store
        .collection<DelayedRun>(DELAYED_SCENARIOS)
        .put(`${scenario}-${alarmId}-${String(event.timestamp)}`, { due, scenario, event: rest });
      wakeAt(engine, due, ctx);
    }
    const planned = all.filter((p) => p.delay === 0);
    if (planned.length === 0) return passOn;
    const entity = await store.collection<Entity>(ENTITIES).get(alarm.d);
    const outputs: Array<Event | Routed> = passOn;
    for (const p of planned) {
      const params = p.action.parameters;
      switch (p.action.type) {
        case 'webhook': {
          try {
            const r = await callWebhook({
              request: params.request!,
              ...(params.declare_ticket ? { declareTicket: params.declare_ticket } : {}),
              retryCount: params.retry_count ?? 0,
              retryDelay: seconds(params.retry_delay, 1),
              data: { alarm: { _id: alarmId, ...alarm }, entity: entity ? { _id: entity.key, ...entity } : null, event },
            });
            ctx.logger.info({ scenario: p.scenario, action: p.index, status: r.status, attempts: r.attempts }, 'webhook called');
            if (r.ticket !== undefined) outputs.push(routeTo('axe', actionEvent(alarm, p, 'declareticketwebhook', { ticket: r.ticket })));
          } catch (e) {
            if (e instanceof WebhookFailed) throw new RejectedEvent(`scenario ${p.scenario}, action ${p.index} (webhook): ${e.message}`);
            throw e;
          }
          break;
        }
        case 'pbehavior': {
          const now = Math.floor(Date.now() / 1000);
          // Keyed by the event and the action: a redelivered event puts the same pbehavior again, not a second one.
          const key = `${p.scenario}-${p.index}-${alarmId}-${String(event.timestamp)}`;
          try {
            await putOperationPbehavior(store, key, params, { entity: alarm.d, author: p.author || 'system', name: p.scenario, now });
          } catch (e) {
            if (e instanceof PbehaviorOperationFailed)
              throw new RejectedEvent(`scenario ${p.scenario}, action ${p.index} (pbehavior): ${e.message}`);
            throw e;
          }
          break;
        }
        case 'changestate':
          outputs.push(routeTo('axe', actionEvent(alarm, p, 'changestate', { state: params.state })));
          break;
        case 'snooze':
          outputs.push(routeTo('axe', actionEvent(alarm, p, 'snooze', { duration: seconds(params.duration, 300) })));
          break;
        case 'assocticket':
          outputs.push(routeTo('axe', actionEvent(alarm, p, 'assocticket', { ticket: params.ticket })));
          break;
        default:
          outputs.push(routeTo('axe', actionEvent(alarm, p, p.action.type, {})));
      }
    }
    return outputs;
  },
};
