import { cp, mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { apiClient } from '../runtime/web/client.js';
import { StartError } from './errors.js';
import type { Prepared } from './prepare.js';
import { UNIT_DIR } from './render/catalog.js';
import { hasRole } from './settings/roles.js';

/*
 * ./build-install --start: the stack under the configured init, then a
 * probe event through the pipeline read back as an alarm through the API.
 */

export interface StartResult {
  init: 'supervisord' | 'systemd';
  notes: string[];
  status: string;
  /** Absent on a host without the webserver role: no API here to probe through. */
  apiUrl?: string;
  probeAlarm?: string;
}

const bin = (p: Prepared, name: string) => path.join(p.layout.bin, name);
const env = (p: Prepared) => ({ CPS_PREFIX: p.layout.prefix });

/** Copies the rendered units (and drop-ins) into a unit directory. */
export async function installUnits(p: Prepared, unitDir: string): Promise<string[]> {
  const from = path.join(p.layout.prefix, UNIT_DIR);
  await mkdir(unitDir, { recursive: true });
  const entries = await readdir(from);
  for (const e of entries) await cp(path.join(from, e), path.join(unitDir, e), { recursive: true });
  return entries;
}

/** Whether some process of the site consumes the queue of the chain's entry (canopsis.events). */
async function entryConsumed(prefix: string): Promise<boolean> {
  const [{ readEngines }, { readBrokerConfig }, { connectAny }, { engineQueue, queueCounts }, { EXCHANGES }] = await Promise.all([
    import('../runtime/config/engines.js'),
    import('../runtime/config/files.js'),
    import('../runtime/amqp/connection.js'),
    import('../runtime/amqp/topology.js'),
    import('../runtime/contract/names.js'),
  ]);
  const entry = [...(await readEngines(prefix)).engines.values()].find((e) => e.exchange === EXCHANGES.events);
  if (!entry) return false;
  const b = await readBrokerConfig(prefix);
  const conn = await connectAny(b.urls, b.wheres).catch(() => undefined);
  if (!conn) return false;
  try {
    return (await queueCounts(conn, engineQueue(entry.name))).consumers > 0;
  } finally {
    await conn.close().catch(() => undefined);
  }
}

export async function startStack(p: Prepared, opts: { unitDir?: string }): Promise<StartResult> {
  const notes: string[] = [];
  let init: StartResult['init'] = 'supervisord';
  if (p.settings.canopsis.init === 'systemd') {
    const unitDir = opts.unitDir ?? '/etc/systemd/system';
    const units = await installUnits(p, unitDir);
    notes.push(`systemd units installed into ${unitDir}: ${units.join(', ')}`);
    if (p.facts.systemdRunning && !opts.unitDir) {
      const sys = async (...args: string[]) => {
        const r = await execa('systemctl', args, { reject: false, all: true });
        if (r.exitCode !== 0) throw new StartError(`systemctl ${args.join(' ')} failed: ${r.all}`);
      };
      await sys('daemon-reload');
      await sys('enable', 'canopsis.target');
      await sys('start', 'canopsis.target');
      init = 'systemd';
    } else {
      notes.push(
        p.facts.systemdRunning
          ? 'units written to a given directory only: starting under supervisord'
          : 'systemd is not PID 1 on this host (a container?): the stack runs under supervisord instead',
      );
    }
  }
  if (init === 'supervisord') {
    const r = await execa(bin(p, 'hypcontrol'), ['start'], { env: env(p), reject: false, all: true });
    if (r.exitCode !== 0) throw new StartError(`hypcontrol start: ${r.exitCode} service(s) failed:\n${r.all}`);
  }
  const status = (await execa(bin(p, 'hypcontrol'), ['status'], { env: env(p), reject: false, all: true })).all ?? '';
  // The probe goes through the API: a broker, store or engines host has none (the webserver host probes the site).
  if (!hasRole(p.settings, 'webserver')) return { init, notes, status };
  // The engines may be other hosts' and not installed yet (a new site): nothing would answer the probe.
  if (!hasRole(p.settings, 'engines') && !(await entryConsumed(p.layout.prefix))) {
    notes.push('no engine consumes the chain yet (the engines hosts come next?): probe skipped; run this again once they run');
    return { init, notes, status };
  }
  const api = await apiClient(p.layout.prefix).catch((e: Error) => {
    throw new StartError(`the probe cannot reach the API: ${e.message}`);
  });
  const apiUrl = api.base;

  // The proof: an event through the whole pipeline, read back as an alarm.
  const resource = `probe-${Date.now()}`;
  const send = (state: number) =>
    execa(
      bin(p, 'send-event'),
      [
        '--connector',
        'build-install',
        '--connector-name',
        'probe',
        '--component',
        'canopsis',
        '--resource',
        resource,
        '--state',
        String(state),
        '--output',
        'build-install --start probe',
      ],
      { env: env(p), reject: false, all: true },
    );
  const sent = await send(2);
  if (sent.exitCode !== 0) throw new StartError(`probe event not sent: ${sent.all}`);
  const deadline = Date.now() + 60_000;
  let probeAlarm: string | undefined;
  let lastError = '';
  try {
    while (!probeAlarm && Date.now() < deadline) {
      const r = await api
        .fetch(`/alarms?entity=${encodeURIComponent(`${resource}/canopsis`)}`, { headers: { 'x-canopsis-authkey': p.secrets.api.authkey } })
        .catch((e: Error & { cause?: Error }) => {
          lastError = e.cause?.message ?? e.message;
          return undefined;
        });
      const body = r?.ok ? ((await r.json()) as { data: Array<{ _id: string }> }) : undefined;
      if (r && !r.ok) lastError = `${r.status} ${await r.text()}`;
      probeAlarm = body?.data[0]?._id;
      if (!probeAlarm) await new Promise((res) => setTimeout(res, 250));
    }
  } finally {
    await api.close();
  }
  if (!probeAlarm)
    throw new StartError(
      `the probe event did not come back as an alarm through ${apiUrl} within 60 s${lastError ? ` (last answer: ${lastError})` : ''}`,
    );
  // Close it again: it resolves after the resolve delay.
  await send(0);
  return { init, notes, status, apiUrl, probeAlarm };
}
