import type { FastifyInstance } from 'fastify';
import { checkAlarmPattern } from '../../alarm/pattern.js';
import { checkDuration } from '../../durations.js';
import { CANONICAL_TYPES, type CanonicalType } from '../../pbehavior/model.js';
import { checkPattern } from '../../pbehavior/pattern.js';
import { ACTION_TYPES, type ActionParameters, SCENARIOS, type Scenario, type ScenarioAction, TRIGGERS } from '../../scenario/model.js';
import type { Store } from '../../store/types.js';
import { type Body, crudRoutes, type Errors, text } from './crud.js';
import { operationParameters } from './operations.js';

/*
 * /api/v4/scenarios as Canopsis v4 serves them (release-22.10,
 * lib/api/scenario/models.go EditRequest and ActionRequest;
 * lib/canopsis/action/action.go Parameters). What the appliance cannot do
 * (triggers it never raises) is refused with a message saying so, never
 * stored and silently ignored.
 */

const now = () => Math.floor(Date.now() / 1000);
const PERIODS = CANONICAL_TYPES.filter((t) => t !== 'active');

const duration = (v: unknown, where: string, errors: Errors) => checkDuration(v, where, errors, `${where} is missing.`);

function actionOf(raw: unknown, i: number, errors: Errors): ScenarioAction | undefined {
  const at = `actions.${i}`;
  const a = (raw ?? {}) as Body;
  const p = (a.parameters ?? {}) as Body;
  if (typeof a.type !== 'string' || !(ACTION_TYPES as readonly string[]).includes(a.type)) {
    errors[`${at}.type`] = `Type must be one of [${ACTION_TYPES.join(' ')}].`;
    return undefined;
  }
  for (const f of ['drop_scenario_if_not_matched', 'emit_trigger'])
    if (typeof a[f] !== 'boolean')
      errors[`${at}.${f}`] = `${f === 'emit_trigger' ? 'EmitTrigger' : 'DropScenarioIfNotMatched'} is missing.`;
  const pattern = a.entity_pattern ?? [];
  const patternError = checkPattern(pattern);
  if (patternError) errors[`${at}.entity_pattern`] = patternError;
  const alarmPattern = a.alarm_pattern ?? [];
  const alarmPatternError = checkAlarmPattern(alarmPattern);
  if (alarmPatternError) errors[`${at}.alarm_pattern`] = alarmPatternError;
  const params: ActionParameters = operationParameters(a.type, p, `${at}.parameters`, errors);
  if (typeof p.author === 'string' && p.author) params.author = p.author;
  switch (a.type) {
    case 'webhook': {
      const r = (p.request ?? {}) as Body;
      if (typeof r.url !== 'string' || !/^https?:\/\/\S+$/.test(r.url))
        errors[`${at}.parameters.request.url`] = 'URL must be an http or https URL.';
      if (typeof r.method !== 'string' || !/^[A-Za-z]+$/.test(r.method)) errors[`${at}.parameters.request.method`] = 'Method is missing.';
      const headers = r.headers ?? {};
      if (typeof headers !== 'object' || Array.isArray(headers) || !Object.values(headers as object).every((v) => typeof v === 'string'))
        errors[`${at}.parameters.request.headers`] = 'Headers must be an object of strings.';
      const timeout =
        r.timeout === undefined || r.timeout === null ? undefined : duration(r.timeout, `${at}.parameters.request.timeout`, errors);
      const auth = r.auth as { username?: unknown; password?: unknown } | undefined;
      params.request = {
        url: String(r.url ?? ''),
        method: String(r.method ?? ''),
        headers: headers as Record<string, string>,
        ...(typeof r.payload === 'string' ? { payload: r.payload } : {}),
        skip_verify: r.skip_verify === true,
        ...(timeout ? { timeout } : {}),
        ...(auth && typeof auth.username === 'string' ? { auth: { username: auth.username, password: String(auth.password ?? '') } } : {}),
      };
      if (p.retry_count !== undefined && (!Number.isSafeInteger(p.retry_count) || (p.retry_count as number) < 0))
        errors[`${at}.parameters.retry_count`] = 'RetryCount should be 0 or more.';
      else if (p.retry_count !== undefined) params.retry_count = p.retry_count as number;
      if (p.retry_delay !== undefined && p.retry_delay !== null) {
        const d = duration(p.retry_delay, `${at}.parameters.retry_delay`, errors);
        if (d) params.retry_delay = d;
      }
      const dt = p.declare_ticket as { ticket_id?: unknown; empty_response?: unknown } | undefined;
      if (dt && typeof dt === 'object') {
        if (typeof dt.ticket_id !== 'string' || !dt.ticket_id) errors[`${at}.parameters.declare_ticket.ticket_id`] = 'TicketID is missing.';
        else params.declare_ticket = { ticket_id: dt.ticket_id, empty_response: dt.empty_response === true };
      }
      break;
    }
  }
  return {
    type: a.type as ScenarioAction['type'],
    parameters: params,
    comment: typeof a.comment === 'string' ? a.comment : '',
    entity_pattern: pattern as ScenarioAction['entity_pattern'],
    alarm_pattern: alarmPattern as ScenarioAction['alarm_pattern'],
    drop_scenario_if_not_matched: a.drop_scenario_if_not_matched === true,
    emit_trigger: a.emit_trigger === true,
  };
}

async function scenarioOf(b: Body, author: string, existing?: Scenario): Promise<{ doc?: Scenario; errors: Errors }> {
  const errors: Errors = {};
  const name = text(b, 'name', errors, 'Name');
  if (typeof b.enabled !== 'boolean') errors.enabled = 'Enabled is missing.';
  if (b.priority !== undefined && (!Number.isSafeInteger(b.priority) || (b.priority as number) <= 0))
    errors.priority = 'Priority should be greater than 0.';
  const triggers = b.triggers;
  if (!Array.isArray(triggers) || triggers.length === 0) errors.triggers = 'Triggers is missing.';
  else {
    const unknown = triggers.filter((t) => !(TRIGGERS as readonly string[]).includes(t as string));
    if (unknown.length) errors.triggers = `Triggers ${unknown.join(', ')} are not raised here: use some of [${TRIGGERS.join(' ')}].`;
  }
  const periods = b.disable_during_periods ?? [];
  if (!Array.isArray(periods) || !periods.every((p) => (PERIODS as string[]).includes(p as string)))
    errors.disable_during_periods = `DisableDuringPeriods must be a list of [${PERIODS.join(' ')}].`;
  const delay = b.delay === undefined || b.delay === null ? undefined : duration(b.delay, 'delay', errors);
  const rawActions = b.actions;
  const actions: ScenarioAction[] = [];
  if (!Array.isArray(rawActions) || rawActions.length === 0) errors.actions = 'Actions is missing.';
  else
    for (const [i, raw] of rawActions.entries()) {
      const a = actionOf(raw, i, errors);
      if (a) actions.push(a);
    }
  if (Object.keys(errors).length) return { errors };
  return {
    errors,
    doc: {
      name,
      author,
      enabled: b.enabled as boolean,
      priority: (b.priority as number | undefined) ?? 1,
      triggers: triggers as string[],
      disable_during_periods: periods as CanonicalType[],
      ...(delay ? { delay } : {}),
      actions,
      created: existing?.created ?? now(),
      updated: now(),
    },
  };
}

export function scenarioRoutes(app: FastifyInstance, store: Store): void {
  crudRoutes<Scenario>(app, {
    store,
    route: '/api/v4/scenarios',
    bulk: '/api/v4/bulk/scenarios',
    collection: SCENARIOS,
    version: SCENARIOS,
    check: scenarioOf,
    sort: [['priority', 1]],
  });
}
