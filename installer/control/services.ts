import { readFile } from 'node:fs/promises';
import { layoutOf } from '../../runtime/contract/layout.js';
import { READY } from '../services/index.js';
import { engineBacklog } from './backlog.js';
import type { Supervisor } from './supervisor.js';

/*
 * Start, stop and look at one service of a prefix under supervisord, the
 * way an operator expects: start waits until it is really ready.
 */

export interface Tiers {
  BACKEND: string[];
  MIDDLEWARE: string[];
  FRONTEND: string[];
}

export async function readTiers(prefix: string): Promise<Tiers> {
  const text = await readFile(layoutOf(prefix).files.hypcontrol, 'utf8');
  const get = (k: keyof Tiers) => (new RegExp(`^${k}="([^"]*)"`, 'm').exec(text)?.[1] ?? '').split(/\s+/).filter(Boolean);
  return { BACKEND: get('BACKEND'), MIDDLEWARE: get('MIDDLEWARE'), FRONTEND: get('FRONTEND') };
}

export interface ServiceState {
  service: string;
  running: boolean;
  ready: boolean;
  detail: string;
}

export async function serviceState(sup: Supervisor, prefix: string, service: string): Promise<ServiceState> {
  const names = await sup.namesOf(service);
  if (names.length === 0) return { service, running: false, ready: false, detail: 'unknown to supervisord' };
  const status = (await sup.status()).filter((p) => names.includes(p.name));
  const down = status.filter((p) => p.state !== 'RUNNING');
  if (down.length) return { service, running: false, ready: false, detail: down.map((p) => `${p.name} ${p.state}`).join(', ') };
  const check = READY[service];
  const why = check ? await check(prefix).catch((e: Error) => e.message) : undefined;
  const running = `${names.length} process${names.length > 1 ? 'es' : ''} running`;
  const backlog = service === 'amqp2engines' && !why ? await engineBacklog(prefix).catch(() => undefined) : undefined;
  return { service, running: true, ready: !why, detail: [why ?? running, backlog].filter(Boolean).join('; ') };
}

export async function waitReady(sup: Supervisor, prefix: string, service: string, timeoutMs: number): Promise<ServiceState> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await serviceState(sup, prefix, service);
    if (s.ready) return s;
    if (Date.now() > deadline) return { ...s, detail: `not ready after ${Math.round(timeoutMs / 1000)} s: ${s.detail}` };
    await new Promise((r) => setTimeout(r, 250));
  }
}

export async function startService(sup: Supervisor, prefix: string, service: string, timeoutMs: number): Promise<ServiceState> {
  await sup.ensure();
  // Pick up configuration re-rendered by build-install (numprocs, commands): supervisord only reads it on reread/update.
  await sup.ctl('reread');
  await sup.ctl('update', service.startsWith('engine-') ? 'amqp2engines' : service);
  const names = await sup.namesOf(service);
  if (names.length === 0) return { service, running: false, ready: false, detail: 'unknown to supervisord' };
  // supervisorctl reports failures per process; readiness below says what is left.
  await together(sup, 'start', names);
  return waitReady(sup, prefix, service, timeoutMs);
}

export async function stopService(sup: Supervisor, service: string): Promise<ServiceState> {
  if (!(await sup.running())) return { service, running: false, ready: false, detail: 'stopped (supervisord not running)' };
  const names = await sup.namesOf(service);
  await together(sup, 'stop', names);
  const still = (await sup.status()).filter(
    (p) => names.includes(p.name) && p.state !== 'STOPPED' && p.state !== 'EXITED' && p.state !== 'FATAL',
  );
  return {
    service,
    running: still.length > 0,
    ready: false,
    detail: still.length ? `still ${still.map((p) => `${p.name} ${p.state}`).join(', ')}` : 'stopped',
  };
}

/**
 * One supervisorctl per process, all at once: `supervisorctl start a b c`
 * starts them one after the other, each waiting its startsecs (six engines
 * took 14 s to start that way, 2.4 s together).
 */
async function together(sup: Supervisor, action: 'start' | 'stop', names: string[]): Promise<void> {
  await Promise.all(names.map((name) => sup.ctl(action, name)));
}
