import { alarmUp } from '../../installer/migrations/alarms-v4.js';
import type { StoredAlarm } from '../../runtime/alarm/model.js';
import type { CanonicalType, PbehaviorInfo } from '../../runtime/pbehavior/model.js';

/*
 * A stored alarm for tests and benches that fill a store directly: the
 * migration's own mapping from the simple 0.3.0 fields, so that a fixture
 * has the same shape axe writes.
 */

export interface AlarmFixture {
  id: string;
  entity: string;
  opened: number;
  state?: number;
  resolved?: number | null;
  output?: string;
  connector?: string;
  connector_name?: string;
}

export function storedAlarm(f: AlarmFixture): StoredAlarm {
  const [resource, component] = f.entity.includes('/') ? f.entity.split('/') : [undefined, f.entity];
  const state = f.state ?? 2;
  const connector = f.connector ?? 'nagios';
  const connectorName = f.connector_name ?? 'n1';
  const author = `${connector}.${connectorName}`;
  const { _id: _drop, ...doc } = alarmUp({
    id: f.id,
    entity: f.entity,
    connector,
    connector_name: connectorName,
    component: component!,
    ...(resource !== undefined ? { resource } : {}),
    opened_at: f.opened,
    last_update: f.opened,
    last_event: f.opened,
    events_count: 1,
    output: f.output ?? 'x',
    state: { val: state, t: f.opened, locked: false },
    status: { val: 1, t: f.opened },
    state_changes: [f.opened],
    non_ok_since: f.opened,
    steps: [
      { type: 'stateinc', t: f.opened, author, message: f.output ?? 'x', val: state },
      { type: 'statusinc', t: f.opened, author, message: f.output ?? 'x', val: 1 },
    ],
    resolved: f.resolved ?? null,
  });
  return doc;
}

/** The pbehavior info an alarm in a window of this canonical type carries (pbehavior `p`, type `t`). */
export const pbehaviorInfo = (canonical_type: CanonicalType): PbehaviorInfo => ({
  timestamp: 0,
  id: 'p',
  name: 'p',
  reason: '',
  reason_name: '',
  type: 't',
  type_name: 't',
  canonical_type,
});
