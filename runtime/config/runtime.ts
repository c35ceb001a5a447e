import { type AlarmSettings, DEFAULT_ALARM_SETTINGS } from '../alarm/model.js';
import { layoutOf } from '../contract/layout.js';
import { EXCHANGES } from '../contract/names.js';
import type { Store } from '../store/types.js';
import { ConfigError } from './errors.js';
import { readIni } from './files.js';

/* etc/runtime.conf: the store, the event dispatchers, alarm, perfdata and retention settings. */

/** Seconds a record is kept; 0 keeps it forever. */
export interface Retention {
  /** event_log entries, by their timestamp. */
  eventLog: number;
  /** Resolved alarms, by when they were resolved. */
  resolvedAlarms: number;
}

export const DEFAULT_RETENTION: Retention = { eventLog: 30 * 86400, resolvedAlarms: 30 * 86400 };

export interface RuntimeConfig {
  file: string;
  /** busyTimeout: seconds a writer of the embedded store waits for another before the store counts as unavailable (absent: the store's default, 10). */
  store: { backend: 'embedded'; file: string; busyTimeout?: number } | { backend: 'mongodb' | 'postgresql'; url: string };
  dispatchers: string[];
  alertsExchange: string;
  alarms: AlarmSettings;
  perfdataRetention: number;
  /** Always set by readRuntimeConfig; absent in a hand-made config: DEFAULT_RETENTION. */
  retention?: Retention;
}

const num = (file: string, section: string, data: Record<string, string> | undefined, key: string, fallback: number) => {
  const v = data?.[key];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new ConfigError(file, `[${section}] ${key}: found "${v}", expected a number >= 0`);
  return n;
};

export async function readRuntimeConfig(prefix: string): Promise<RuntimeConfig> {
  const layout = layoutOf(prefix);
  const file = layout.files.runtime;
  // Absent (a bare runtime prefix): the defaults, embedded store under var/lib.
  const ini = await readIni(file).catch((e: unknown) => {
    if (e instanceof ConfigError && /ENOENT/.test(e.message)) return {} as Record<string, Record<string, string>>;
    throw e;
  });
  const st = ini.store ?? {};
  let store: RuntimeConfig['store'];
  if ((st.backend ?? 'embedded') === 'embedded') {
    // Unset: the store's own default (store/sqlite.ts, not loaded here: only the engines that open the store load it).
    const busy = st.busy_timeout ? { busyTimeout: num(file, 'store', st, 'busy_timeout', 0) } : {};
    store = { backend: 'embedded', file: st.file || layout.storeFile, ...busy };
  } else if (st.backend === 'mongodb' || st.backend === 'postgresql') {
    if (!st.url) throw new ConfigError(file, `[store] url is missing for backend ${st.backend}`);
    store = { backend: st.backend, url: st.url };
  } else throw new ConfigError(file, `[store] backend: found "${st.backend}", expected embedded, mongodb or postgresql`);
  const a = ini.alarms;
  const d = DEFAULT_ALARM_SETTINGS;
  return {
    file,
    store,
    dispatchers: (ini.dispatchers?.event_dispatchers ?? 'database')
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean),
    alertsExchange: ini.dispatchers?.alerts_exchange || EXCHANGES.alerts,
    alarms: {
      resolveDelay: num(file, 'alarms', a, 'resolve_delay', d.resolveDelay),
      cancelDelay: num(file, 'alarms', a, 'cancel_delay', d.cancelDelay),
      flappingCount: num(file, 'alarms', a, 'flapping_count', d.flappingCount),
      flappingWindow: num(file, 'alarms', a, 'flapping_window', d.flappingWindow),
      stealthyWindow: num(file, 'alarms', a, 'stealthy_window', d.stealthyWindow),
      maxSteps: num(file, 'alarms', a, 'max_steps', d.maxSteps),
      snoozeDefault: num(file, 'alarms', a, 'snooze_default', d.snoozeDefault),
    },
    perfdataRetention: num(file, 'perfdata', ini.perfdata, 'retention', 604800),
    retention: {
      eventLog: num(file, 'retention', ini.retention, 'event_log', DEFAULT_RETENTION.eventLog),
      resolvedAlarms: num(file, 'retention', ini.retention, 'resolved_alarms', DEFAULT_RETENTION.resolvedAlarms),
    },
  };
}

/** Opens the store; only its backend's driver is loaded (the MongoDB driver alone is ~30 MiB of an engine's memory). */
export async function openStore(cfg: RuntimeConfig): Promise<Store> {
  const st = cfg.store;
  if (st.backend === 'embedded') {
    const { SqliteStore } = await import('../store/sqlite.js');
    return new SqliteStore(st.file, st.busyTimeout === undefined ? {} : { busyTimeoutMs: st.busyTimeout * 1000 });
  }
  if (st.backend === 'postgresql') {
    const { PgStore } = await import('../store/postgresql.js');
    return PgStore.connect(st.url);
  }
  const { MongoStore } = await import('../store/mongodb.js');
  return MongoStore.connect(st.url);
}
