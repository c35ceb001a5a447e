import path from 'node:path';
import { z } from 'zod';
import type { Store } from '../../runtime/store/types.js';
import { writeAtomic } from '../apply/apply.js';
import { readStateFile } from '../apply/state-file.js';
import { compareVersions } from '../bundle/format.js';
import type { Layout } from '../layout.js';
import { parseIni, removeIniSection, setIniValue } from '../settings/ini-text.js';
import { RENAMED_KEYS } from '../settings/schema.js';
import { alarmsFromV4, alarmsToV4 } from './alarms-v4.js';

/*
 * Ordered migrations between versions: settings keys renamed or removed
 * (on the canopsis.ini text, comments kept) and store documents reshaped.
 * Each runs exactly once per prefix; what ran is recorded in
 * var/lib/pkgmgr/migrations.json. Store migrations must be idempotent: a run
 * killed half-way runs them again.
 */

/** `<version>-<what>`: what a migration id looks like (checked when the record is read back). */
export const MIGRATION_ID = /^\d+\.\d+\.\d+-[A-Za-z0-9_.-]+$/;

/** The record of the migrations run on a prefix (root's, in the installer state). */
export const migrationsFile = (layout: Layout) => path.join(layout.pkgmgr, 'migrations.json');

export interface Migration {
  /** Unique and ordered: `<version>-<what>`. */
  id: string;
  description: string;
  settings?: (text: string) => string;
  store?: (store: Store) => Promise<void>;
  /**
   * The undo, for a failed update and a downgrade. Both directions must be
   * idempotent: a rollback runs it whether or not the migration got to run.
   * A store part without an undo makes the migration irreversible, and an
   * update refuses it unless the operator accepts that (--allow-irreversible).
   */
  down?: { settings?: (text: string) => string; store?: (store: Store) => Promise<void> };
}

/** The version a migration belongs to (the start of its id). */
export const versionOf = (m: Migration) => m.id.split('-')[0]!;

export const reversible = (m: Migration) => !m.store || m.down?.store !== undefined;

/** Migrations newer than `version`, newest first: what a rollback or a downgrade to it undoes. */
export const newerThan = (list: Migration[], version: string) => list.filter((m) => compareVersions(versionOf(m), version) > 0).reverse();

/**
 * 0.2.0 added perfdata after axe and the collectd gateway to the stock chain;
 * a canopsis.ini written by 0.1.0 with the stock ending (axe last) gets them.
 * A chain the operator changed there is left alone.
 */
export function addMetricEngines(text: string): string {
  const ini = parseIni(text);
  const axe = ini.get('engine:axe');
  if (!axe || !ini.has('engine:che') || (axe.next ?? '') !== '' || ini.has('engine:perfdata') || ini.has('engine:collectdgw')) return text;
  const sets: Array<[string, string, string]> = [
    ['engine:axe', 'next', 'perfdata'],
    ['engine:perfdata', 'event_processing', 'canopsis.perfdata.process.event_processing'],
    ['engine:perfdata', 'beat_processing', 'canopsis.perfdata.process.beat_processing'],
    ['engine:collectdgw', 'event_processing', 'canopsis.collectdgw.process.event_processing'],
    ['engine:collectdgw', 'exchange', 'canopsis.collectd'],
    ['engine:collectdgw', 'next', 'che'],
  ];
  return sets.reduce((t, [section, key, value]) => setIniValue(t, section, key, value), text);
}

/**
 * 0.4.0 adds the operator engines to a stock chain, where Canopsis 4 has
 * them: pbehavior between che and axe (when che's next is axe), action
 * right after axe (when axe's next is perfdata or nothing). A chain the
 * operator changed at either place is left alone there.
 */
export function addOperatorEngines(text: string): string {
  let ini = parseIni(text);
  let out = text;
  if ((ini.get('engine:che')?.next ?? '') === 'axe' && ini.has('engine:axe') && !ini.has('engine:pbehavior')) {
    for (const [section, key, value] of [
      ['engine:che', 'next', 'pbehavior'],
      ['engine:pbehavior', 'event_processing', 'canopsis.pbehavior.process.event_processing'],
      ['engine:pbehavior', 'beat_processing', 'canopsis.pbehavior.process.beat_processing'],
      ['engine:pbehavior', 'next', 'axe'],
    ] as const)
      out = setIniValue(out, section, key, value);
  }
  ini = parseIni(out);
  const axeNext = ini.get('engine:axe')?.next ?? '';
  if (ini.has('engine:axe') && (axeNext === 'perfdata' || axeNext === '') && !ini.has('engine:action')) {
    out = setIniValue(out, 'engine:axe', 'next', 'action');
    out = setIniValue(out, 'engine:action', 'event_processing', 'canopsis.action.process.event_processing');
    out = setIniValue(out, 'engine:action', 'beat_processing', 'canopsis.action.process.beat_processing');
    if (axeNext) out = setIniValue(out, 'engine:action', 'next', axeNext);
  }
  return out;
}

/** The way back: each engine taken out where 0.4.0 put it, its neighbours joined again. */
export function removeOperatorEngines(text: string): string {
  let ini = parseIni(text);
  let out = text;
  if ((ini.get('engine:axe')?.next ?? '') === 'action' && ini.has('engine:action')) {
    const after = ini.get('engine:action')?.next ?? '';
    out = setIniValue(removeIniSection(out, 'engine:action'), 'engine:axe', 'next', after);
  }
  ini = parseIni(out);
  if ((ini.get('engine:che')?.next ?? '') === 'pbehavior' && (ini.get('engine:pbehavior')?.next ?? '') === 'axe') {
    out = setIniValue(removeIniSection(out, 'engine:pbehavior'), 'engine:che', 'next', 'axe');
  }
  return out;
}

/** Entities as 0.2.0 stored them (first_seen / last_seen). */
interface EntityV2 {
  first_seen?: number;
  last_seen?: number;
  created?: number;
  last_event_date?: number;
  enabled?: boolean;
}

/** Reshapes every document of `name` that `match` selects; each one atomically, so engines writing meanwhile lose nothing. */
async function reshapeAll<T extends object>(store: Store, name: string, field: string, fn: (doc: T) => T | undefined): Promise<void> {
  const c = store.collection<T>(name);
  for (;;) {
    const batch = await c.find({ [field]: { $exists: true } }, { limit: 500 });
    if (batch.length === 0) return;
    for (const d of batch) {
      await c.modify(d.key, (cur) => {
        if (!cur) return undefined;
        const { key: _key, ...doc } = cur;
        return fn(doc as T);
      });
    }
  }
}

/**
 * 0.3.0 stores entities with Canopsis v4's field names: created and
 * last_event_date instead of first_seen and last_seen, and enabled.
 */
export async function entitiesToV4(store: Store): Promise<void> {
  // A field of the other shape already there (an engine of the other version wrote meanwhile) is not overwritten.
  await reshapeAll<EntityV2>(store, 'entities', 'first_seen', ({ first_seen, last_seen, ...rest }) => ({
    ...rest,
    created: rest.created ?? first_seen,
    last_event_date: Math.max(rest.last_event_date ?? 0, last_seen ?? 0),
    enabled: rest.enabled ?? true,
  }));
}

export async function entitiesFromV4(store: Store): Promise<void> {
  await reshapeAll<EntityV2>(store, 'entities', 'created', ({ created, last_event_date, enabled: _enabled, ...rest }) => ({
    ...rest,
    first_seen: rest.first_seen ?? created,
    last_seen: Math.max(rest.last_seen ?? 0, last_event_date ?? 0),
  }));
}

/** The migrations this release knows, oldest first. */
export const MIGRATIONS: Migration[] = [
  {
    id: '0.2.0-metric-engines',
    description: 'perfdata after axe and the collectd gateway join the stock engine chain',
    settings: addMetricEngines,
  },
  ...RENAMED_KEYS.map((r) => ({
    id: `${r.version}-${r.section}-${r.from}`,
    description: `[${r.section}] ${r.from} is renamed ${r.to}`,
    settings: renameKey(r.section, r.from, r.to),
    down: { settings: renameKey(r.section, r.to, r.from) },
  })),
  {
    id: '0.3.0-entity-fields',
    description: 'stored entities take Canopsis v4 field names: created, last_event_date, enabled',
    store: entitiesToV4,
    down: { store: entitiesFromV4 },
  },
  {
    id: '0.4.0-operator-engines',
    description:
      'the pbehavior engine (maintenance windows) joins the stock chain between che and axe, the action engine (scenarios) after axe',
    settings: addOperatorEngines,
    down: { settings: removeOperatorEngines },
  },
  {
    id: '0.4.0-alarms-v4',
    description:
      "stored alarms take Canopsis v4's shape (t, d, v with steps {_t,a,m,t,val}); connector entities are named by connector_name",
    store: alarmsToV4,
    down: { store: alarmsFromV4 },
  },
];

export interface MigrationState {
  applied: Record<string, string>;
}

const stateSchema = z.object({ applied: z.record(z.string().regex(MIGRATION_ID), z.string()) });

/** The record of what ran; absent means nothing did. A record that is not ours stops the run: guessing would run migrations twice or never. */
export async function readMigrationState(file: string): Promise<MigrationState> {
  return (await readStateFile(file, stateSchema, 'a migration record')) ?? { applied: {} };
}

export const pending = (list: Migration[], state: MigrationState) => list.filter((m) => !(m.id in state.applied));

/** The settings text after every pending settings migration. */
export function migrateSettings(text: string, todo: Migration[]): string {
  return todo.reduce((t, m) => (m.settings ? m.settings(t) : t), text);
}

export async function recordApplied(file: string, state: MigrationState, done: Migration[], now = new Date()): Promise<MigrationState> {
  const next = { applied: { ...state.applied, ...Object.fromEntries(done.map((m) => [m.id, now.toISOString()])) } };
  await writeAtomic(file, `${JSON.stringify(next, null, 2)}\n`, 0o644);
  return next;
}

/** A settings migration renaming a key of a section (the value and its comment lines kept). */
export function renameKey(section: string, from: string, to: string) {
  return (text: string): string => {
    let current = '';
    return text
      .split('\n')
      .map((line) => {
        const sec = /^\s*\[([^\]]+)\]\s*$/.exec(line);
        if (sec) current = sec[1]!;
        if (current !== section) return line;
        const m = /^(\s*)([^=;#\s]+)(\s*=.*)$/.exec(line);
        return m && m[2] === from ? `${m[1]}${to}${m[3]}` : line;
      })
      .join('\n');
  };
}
