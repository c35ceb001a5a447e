import type { FastifyInstance } from 'fastify';
import { checkDuration } from '../../durations.js';
import { IDLE_RULES, type IdleRule } from '../../idle/rules.js';
import { CANONICAL_TYPES, type CanonicalType } from '../../pbehavior/model.js';
import { checkPattern } from '../../pbehavior/pattern.js';
import type { Store } from '../../store/types.js';
import { type Body, crudRoutes, type Errors, text } from './crud.js';

/*
 * /api/v4/idle-rules as Canopsis v4 serves them (release-22.10,
 * lib/api/idlerule models.go EditRequest; lib/canopsis/idlerule/rule.go).
 * Entity rules only: an alarm rule (type "alarm", with its operation) is
 * refused with a message saying so rather than stored and never applied.
 */

const now = () => Math.floor(Date.now() / 1000);

async function idleRuleOf(b: Body, author: string, existing?: IdleRule): Promise<{ doc?: IdleRule; errors: Errors }> {
  const errors: Errors = {};
  const name = text(b, 'name', errors, 'Name');
  const description = text(b, 'description', errors, 'Description', false);
  if (typeof b.enabled !== 'boolean') errors.enabled = 'Enabled is missing.';
  if (b.type === 'alarm') errors.type = 'Alarm rules (type alarm) are not supported yet: only entity rules are applied.';
  else if (b.type !== 'entity') errors.type = 'Type must be one of [alarm entity].';
  if (!Number.isSafeInteger(b.priority)) errors.priority = 'Priority is missing.';
  const duration = checkDuration(b.duration, 'duration', errors, 'Duration is missing.');
  const patternError = b.entity_pattern === undefined ? 'EntityPattern is missing.' : checkPattern(b.entity_pattern);
  if (patternError) errors.entity_pattern = patternError;
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
      type: 'entity',
      priority: b.priority as number,
      duration: duration!,
      entity_pattern: b.entity_pattern as IdleRule['entity_pattern'],
      disable_during_periods: periods as CanonicalType[],
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
