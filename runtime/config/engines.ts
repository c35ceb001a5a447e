import { layoutOf } from '../contract/layout.js';
import { ConfigError } from './errors.js';
import { readIni } from './files.js';

/* The [engine:NAME] sections of etc/amqp2engines.conf, as the runtime uses them. */

export interface EngineConfig {
  name: string;
  eventProcessing?: string;
  beatProcessing?: string;
  next: string[];
  /** The exchange whose events this engine's queue receives (the chain's entry). */
  exchange?: string;
  beatInterval: number;
  /** Processes of this engine (supervisord numprocs), for partitioned engines. */
  numprocs: number;
}

export function parseEngines(file: string, data: Record<string, Record<string, string>>): Map<string, EngineConfig> {
  const out = new Map<string, EngineConfig>();
  for (const [section, v] of Object.entries(data)) {
    const m = /^engine:(.+)$/.exec(section);
    if (!m) continue;
    const name = m[1]!;
    const beat = v.beat_interval === undefined ? 60 : Number(v.beat_interval);
    if (!Number.isFinite(beat) || beat <= 0)
      throw new ConfigError(file, `[${section}] beat_interval: found "${v.beat_interval}", expected seconds > 0`);
    const numprocs = v.numprocs === undefined ? 1 : Number(v.numprocs);
    if (!Number.isInteger(numprocs) || numprocs < 1)
      throw new ConfigError(file, `[${section}] numprocs: found "${v.numprocs}", expected an integer >= 1`);
    out.set(name, {
      numprocs,
      name,
      eventProcessing: v.event_processing || undefined,
      beatProcessing: v.beat_processing || undefined,
      next: (v.next ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
      exchange: v.exchange || undefined,
      beatInterval: beat,
    });
  }
  return out;
}

export async function readEngines(prefix: string): Promise<{ file: string; engines: Map<string, EngineConfig> }> {
  const file = layoutOf(prefix).files.amqp2engines;
  return { file, engines: parseEngines(file, await readIni(file)) };
}

export async function readEngine(prefix: string, name: string): Promise<EngineConfig> {
  const { file, engines } = await readEngines(prefix);
  const e = engines.get(name);
  if (!e) throw new ConfigError(file, `no [engine:${name}] section (engines: ${[...engines.keys()].join(', ') || 'none'})`);
  return e;
}
