import { readFile } from 'node:fs/promises';
import type { Store } from '../../runtime/store/types.js';
import { writeAtomic } from '../apply/apply.js';
import { parseIni, setIniValue } from '../settings/ini-text.js';

/*
 * Ordered migrations between versions: settings keys renamed or removed
 * (on the canopsis.ini text, comments kept) and store documents reshaped.
 * Each runs exactly once per prefix; what ran is recorded in
 * var/lib/pkgmgr/migrations.json. Store migrations must be idempotent: a run
 * killed half-way runs them again.
 */

export interface Migration {
  /** Unique and ordered: `<version>-<what>`. */
  id: string;
  description: string;
  settings?: (text: string) => string;
  store?: (store: Store) => Promise<void>;
}

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

/** The migrations this release knows, oldest first. */
export const MIGRATIONS: Migration[] = [
  { id: '0.2.0-metric-engines', description: 'perfdata after axe and the collectd gateway join the stock engine chain', settings: addMetricEngines },
];

export interface MigrationState {
  applied: Record<string, string>;
}

export async function readMigrationState(file: string): Promise<MigrationState> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as MigrationState;
  } catch {
    return { applied: {} };
  }
}

export const pending = (list: Migration[], state: MigrationState) => list.filter((m) => !(m.id in state.applied));

/** The settings text after every pending settings migration. */
export function migrateSettings(text: string, todo: Migration[]): string {
  return todo.reduce((t, m) => (m.settings ? m.settings(t) : t), text);
}

export async function migrateStore(store: Store, todo: Migration[]): Promise<void> {
  for (const m of todo) if (m.store) await m.store(store);
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
