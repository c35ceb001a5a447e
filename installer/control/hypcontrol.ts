#!/usr/bin/env node
import { Argument, Command } from 'commander';
import { parseOrExit } from '../../runtime/cli/args.js';
import { prefixFrom } from '../../runtime/config/files.js';
import { readTiers, type ServiceState, serviceState, startService, stopService, type Tiers } from './services.js';
import { Supervisor } from './supervisor.js';

/*
 * PREFIX/bin/hypcontrol start|stop|restart|status (seed 004): the services
 * of etc/hypcontrol.conf tier by tier (BACKEND, MIDDLEWARE, FRONTEND), those
 * of a tier in parallel, each waited on until ready; stop in reverse. The
 * exit code is the number of services that failed, each named.
 */

const ORDER: Array<keyof Tiers> = ['BACKEND', 'MIDDLEWARE', 'FRONTEND'];
/** The exit code when hypcontrol itself fails, above any count of failed services. */
const BROKEN = 125;

const cmd = new Command('hypcontrol')
  .description('Start, stop, restart or show every service of etc/hypcontrol.conf, tier by tier.')
  .addArgument(new Argument('<action>').choices(['start', 'stop', 'restart', 'status']))
  .addHelpText(
    'after',
    `\nExit code: the number of services that failed (each named), ${BROKEN} when hypcontrol itself fails, 2 for usage.`,
  )
  .exitOverride();

parseOrExit(cmd);

const action = cmd.processedArgs[0] as string;
const timeoutMs = Number(process.env.CPS_SERVICE_TIMEOUT ?? 180) * 1000;
const out = (s: string) => process.stdout.write(`${s}\n`);

const sup = new Supervisor(prefixFrom());
const tiers = await readTiers(sup.prefix);

async function start(): Promise<ServiceState[]> {
  await sup.ensure();
  const failed: ServiceState[] = [];
  for (const tier of ORDER) {
    if (!tiers[tier].length) continue;
    const results = await Promise.all(tiers[tier].map((s) => startService(sup, sup.prefix, s, timeoutMs)));
    for (const r of results) out(`${tier.padEnd(10)} ${r.service.padEnd(16)} ${r.ready ? 'ready' : 'FAILED'}  ${r.detail}`);
    failed.push(...results.filter((r) => !r.ready));
    // A tier that did not come up would only make the next one fail for a worse reason.
    if (failed.length) break;
  }
  return failed;
}

async function stop(): Promise<ServiceState[]> {
  const failed: ServiceState[] = [];
  for (const tier of [...ORDER].reverse()) {
    const results = await Promise.all(tiers[tier].map((s) => stopService(sup, s)));
    for (const r of results) out(`${tier.padEnd(10)} ${r.service.padEnd(16)} ${r.running ? 'FAILED' : 'stopped'}  ${r.detail}`);
    failed.push(...results.filter((r) => r.running));
  }
  await sup.shutdown();
  return failed;
}

async function status(): Promise<ServiceState[]> {
  const all = ORDER.flatMap((t) => tiers[t].map((s) => [t, s] as const));
  if (!(await sup.running())) {
    for (const [t, s] of all) out(`${t.padEnd(10)} ${s.padEnd(16)} stopped  supervisord not running`);
    return all.map(([, s]) => ({ service: s, running: false, ready: false, detail: 'supervisord not running' }));
  }
  const results = await Promise.all(all.map(async ([t, s]) => [t, await serviceState(sup, sup.prefix, s)] as const));
  for (const [t, r] of results) out(`${t.padEnd(10)} ${r.service.padEnd(16)} ${r.ready ? 'running' : 'DOWN'}  ${r.detail}`);
  return results.map(([, r]) => r).filter((r) => !r.ready);
}

const ACTIONS: Record<string, () => Promise<ServiceState[]>> = {
  start,
  stop,
  status,
  restart: async () => {
    const failed = await stop();
    return failed.length ? failed : start();
  },
};

try {
  const failed = await ACTIONS[action]!();
  if (failed.length) out(`${failed.length} service${failed.length > 1 ? 's' : ''} failed: ${failed.map((f) => f.service).join(', ')}`);
  process.exit(Math.min(failed.length, BROKEN));
} catch (e) {
  process.stderr.write(`hypcontrol ${action}: ${(e as Error).message}\n`);
  process.exit(BROKEN);
}
