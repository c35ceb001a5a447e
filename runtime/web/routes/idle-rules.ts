import type { FastifyInstance } from 'fastify';
import { checkAlarmPattern } from '../../alarm/pattern.js';
import { checkDuration } from '../../durations.js';
import { IDLE_OPERATIONS, IDLE_RULES, type IdleOperation, type IdleRule } from '../../idle/rules.js';
import { CANONICAL_TYPES, type CanonicalType } from '../../pbehavior/model.js';
import { checkPattern } from '../../pbehavior/pattern.js';
import type { Store } from '../../store/types.js';
import { type Body, crudRoutes, type Errors, text } from './crud.js';
import { operationParameters } from './operations.js';

/*
 * /api/v4/idle-rules as Canopsis v4 serves them (release-22.10,
 * lib/api/idlerule models.go EditRequest; lib/canopsis/idlerule/rule.go):
 * entity rules, and alarm rules with their condition and operation.
 */

const now = () => Math.floor(Date.now() / 1000);

/** An alarm rule's operation (idlerule.Operation; the API's validator asks the same of each type). */
function operationOf(raw: unknown, errors: Errors): IdleRule['operation'] {
  const o = (raw ?? undefined) as Body | undefined;
  if (!o || typeof o !== 'object') {
    errors.operation = 'Operation is missing.';
    return undefined;
  }
  if (typeof o.type !== 'string' || !(IDLE_OPERATIONS as readonly string[]).includes(o.type)) {
    errors['operation.type'] = `Type must be one of [${IDLE_OPERATIONS.join(' ')}].`;
    return undefined;
  }
  const params = operationParameters(o.type, (o.parameters ?? {}) as Body, 'operation.parameters', errors);
  return { type: o.type as IdleOperation, parameters: params };
}

async function idleRuleOf(b: Body, author: string, existing?: IdleRule): Promise<{ doc?: IdleRule; errors: Errors }> {
  const errors: Errors = {};
  const name = text(b, 'name', errors, 'Name');
  const description = text(b, 'description', errors, 'Description', false);
  if (typeof b.enabled !== 'boolean') errors.enabled = 'Enabled is missing.';
  if (b.type !== 'entity' && b.type !== 'alarm') errors.type = 'Type must be one of [alarm entity].';
  if (!Number.isSafeInteger(b.priority)) errors.priority = 'Priority is missing.';
  const duration = checkDuration(b.duration, 'duration', errors, 'Duration is missing.');
  // An entity rule needs an entity pattern; an alarm rule one pattern at least (models.go EditRequest).
  const entityPattern = b.entity_pattern ?? (b.type === 'alarm' ? [] : undefined);
  const patternError = entityPattern === undefined ? 'EntityPattern is missing.' : checkPattern(entityPattern);
  if (patternError) errors.entity_pattern = patternError;
  const alarm: Partial<IdleRule> = {};
  if (b.type === 'alarm') {
    const alarmPattern = b.alarm_pattern ?? [];
    const alarmError = checkAlarmPattern(alarmPattern);
    if (alarmError) errors.alarm_pattern = alarmError;
    else if ((alarmPattern as unknown[]).length === 0 && (entityPattern as unknown[] | undefined)?.length === 0)
      errors.alarm_pattern = 'AlarmPattern or EntityPattern is required.';
    if (b.alarm_condition !== 'last_event' && b.alarm_condition !== 'last_update')
      errors.alarm_condition = 'AlarmCondition must be one of [last_event last_update].';
    const operation = operationOf(b.operation, errors);
    Object.assign(alarm, {
      alarm_pattern: alarmPattern as IdleRule['alarm_pattern'],
      alarm_condition: b.alarm_condition as IdleRule['alarm_condition'],
      operation,
    });
  }
  const periods = b.disable_during_periods ?? [];
  if (!Array.isArray(periods) || !periods.every((p) => (CANONICAL_TYPES as string[]).includes(p as string)))
    errors.disable_during_periods = `DisableDuringPeriods must be a list of [${CANONICAL_TYPES.join(' ')}].`;
  if (Object.keys(errors).length) return { errors };
  return {
    errors,
    doc: {
      name,
      description,
      author,
      enabled: b.enabled as boolean,
      type: b.type as IdleRule['type'],
      priority: b.priority as number,
      duration: duration!,
      entity_pattern: entityPattern as IdleRule['entity_pattern'],
      disable_during_periods: periods as CanonicalType[],
      ...alarm,
      created: existing?.created ?? now(),
      updated: now(),
    },
  };
}

export function idleRuleRoutes(app: FastifyInstance, store: Store): void {
  crudRoutes<IdleRule>(app, {
    store,
    route: '/api/v4/idle-rules',
    bulk: '/api/v4/bulk/idle-rules',
    collection: IDLE_RULES,
    check: idleRuleOf,
    sort: [['priority', 1]],
  });
}
