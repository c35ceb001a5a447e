import path from 'node:path';
import { DEFAULT_ALARM_SETTINGS, type AlarmSettings } from '../alarm/model.js';
import { MongoStore } from '../store/mongodb.js';
import { SqliteStore } from '../store/sqlite.js';
import type { Store } from '../store/types.js';
import { ConfigError } from './errors.js';
import { readIni } from './files.js';

/* etc/runtime.conf: the store, the event dispatchers, alarm and perfdata settings. */

export interface RuntimeConfig {
  file: string;
  store: { backend: 'embedded'; file: string } | { backend: 'mongodb'; url: string };
  dispatchers: string[];
  alertsExchange: string;
  alarms: AlarmSettings;
  perfdataRetention: number;
}

const num = (file: string, section: string, data: Record<string, string> | undefined, key: string, fallback: number) => {
  const v = data?.[key];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new ConfigError(file, `[${section}] ${key}: found "${v}", expected a number >= 0`);
  return n;
};

export async function readRuntimeConfig(prefix: string): Promise<RuntimeConfig> {
  const file = path.join(prefix, 'etc', 'runtime.conf');
  // Absent (a bare runtime prefix): the defaults, embedded store under var/lib.
  const ini = await readIni(file).catch((e: unknown) => {
    if (e instanceof ConfigError && /ENOENT/.test(e.message)) return {} as Record<string, Record<string, string>>;
    throw e;
  });
  const st = ini.store ?? {};
  let store: RuntimeConfig['store'];
  if ((st.backend ?? 'embedded') === 'embedded') store = { backend: 'embedded', file: st.file || path.join(prefix, 'var', 'lib', 'canopsis', 'canopsis.db') };
  else if (st.backend === 'mongodb') {
    if (!st.url) throw new ConfigError(file, '[store] url is missing for backend mongodb');
    store = { backend: 'mongodb', url: st.url };
  } else throw new ConfigError(file, `[store] backend: found "${st.backend}", expected embedded or mongodb`);
  const a = ini.alarms;
  const d = DEFAULT_ALARM_SETTINGS;
  return {
    file,
    store,
    dispatchers: (ini.dispatchers?.event_dispatchers ?? 'database').split(',').map((x) => x.trim()).filter(Boolean),
    alertsExchange: ini.dispatchers?.alerts_exchange || 'canopsis.alerts',
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
  };
}

export async function openStore(cfg: RuntimeConfig): Promise<Store> {
  return cfg.store.backend === 'embedded' ? new SqliteStore(cfg.store.file) : MongoStore.connect(cfg.store.url);
}
