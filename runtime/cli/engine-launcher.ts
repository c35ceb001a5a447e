#!/usr/bin/env node
import path from 'node:path';
import { Command, Option } from 'commander';
import { readEngines } from '../config/engines.js';
import { ConfigError } from '../config/errors.js';
import { prefixFrom, readBrokerConfig } from '../config/files.js';
import { openStore, readRuntimeConfig } from '../config/runtime.js';
import { loadDispatchers } from '../dispatch/dispatchers.js';
import { Engine } from '../engine/engine.js';
import { FusedEngines, fusedGroupOf, sharedStore } from '../engine/fused.js';
import { builtinRegistry } from '../engines/builtin.js';
import { createLogger, isLevel, LEVELS } from '../log.js';
import { loadPlugins, PluginError } from '../tasks/registry.js';
import { commanderExit } from './args.js';

/*
 * engine-launcher -e dynamic -n NAME -w WORKER -l LEVEL [-publishQueue Q] [-consumeQueue Q]
 * as supervisord programs and systemd units run it; -e fused -n a,b,c runs
 * consecutive engines of the chain in one process (runtime/engine/fused.ts). Everything that can be
 * wrong in the configuration is found before connecting to the broker.
 */

export function launcherProgram(): Command {
  return new Command('engine-launcher')
    .description('Run one Canopsis engine process: consume Engine_<name>, run its tasks, publish to the next engines.')
    .requiredOption('-e, --engine-type <type>', 'engine type; dynamic: tasks from etc/amqp2engines.conf; fused: several in one process')
    .requiredOption(
      '-n, --name <name>',
      'engine name, the [engine:<name>] section; with -e fused, the names in chain order, comma-separated',
    )
    .option('-w, --worker <n>', 'worker number of this process', '0')
    .option('-l, --log-level <level>', `${Object.keys(LEVELS).join(', ')}`, 'info')
    .option('--publish-queue <queue>', 'also -publishQueue: publish every output to this queue instead of the next engines')
    .option('--consume-queue <queue>', 'also -consumeQueue: consume this queue instead of Engine_<name>')
    .option('--prefix <dir>', 'installed tree (default: $CPS_PREFIX)')
    .addOption(new Option('--stats-interval <s>', 'seconds between self-stats perf events (0: off)').default('60'))
    .exitOverride();
}

// Go-style single-dash long flags (-publishQueue) as seed 002 writes them.
export const normaliseArgs = (argv: string[]) =>
  argv.map((a) => (a === '-publishQueue' ? '--publish-queue' : a === '-consumeQueue' ? '--consume-queue' : a));

class UsageProblem extends Error {}

async function main(argv: string[]): Promise<number> {
  const cmd = launcherProgram();
  try {
    cmd.parse(normaliseArgs(argv), { from: 'user' });
  } catch (e) {
    return commanderExit(e) ?? 2;
  }
  const o = cmd.opts<{
    engineType: string;
    name: string;
    worker: string;
    logLevel: string;
    publishQueue?: string;
    consumeQueue?: string;
    prefix?: string;
    statsInterval: string;
  }>();
  try {
    if (o.engineType !== 'dynamic' && o.engineType !== 'fused')
      throw new UsageProblem(`-e ${o.engineType}: unknown engine type (known: dynamic, fused)`);
    if (!isLevel(o.logLevel)) throw new UsageProblem(`-l ${o.logLevel}: unknown log level (known: ${Object.keys(LEVELS).join(', ')})`);
    const worker = Number(o.worker);
    if (!Number.isInteger(worker) || worker < 0) throw new UsageProblem(`-w ${o.worker}: expected a worker number >= 0`);
    const statsInterval = Number(o.statsInterval);
    const prefix = prefixFrom(process.env, o.prefix);
    const { file, engines } = await readEngines(prefix);
    const names = o.engineType === 'fused' ? o.name.split(',').map((n) => n.trim()) : [o.name];
    const configs = names.map((name) => {
      const config = engines.get(name);
      if (!config) throw new ConfigError(file, `no [engine:${name}] section (engines: ${[...engines.keys()].join(', ') || 'none'})`);
      return config;
    });
    if (new Set(names).size !== names.length) throw new UsageProblem(`-n ${o.name}: an engine is named twice`);
    if (names.length > 1 && (o.publishQueue || o.consumeQueue))
      throw new UsageProblem('-publishQueue and -consumeQueue apply to one engine, not to a fused group');
    const broker = await readBrokerConfig(prefix);
    const runtime = await readRuntimeConfig(prefix);
    const registry = builtinRegistry();
    const pluginsDir = path.join(prefix, 'lib', 'canopsis', 'plugins');
    await loadPlugins(registry, pluginsDir);
    // A fused process names its group once; each engine's lines add `engine` themselves.
    const logger = createLogger(o.logLevel, names.length > 1 ? { fused: o.name, worker } : { engine: o.name, worker });
    const group = fusedGroupOf(configs, registry);
    const store = sharedStore(() => openStore(runtime));
    const members: Engine[] = [];
    for (const config of group.configs) {
      const log = names.length > 1 ? logger.child({ engine: config.name }) : logger;
      // Loaded before connecting so that an unknown dispatcher name stops the start.
      const dispatchersOf = async (engine: Engine) =>
        loadDispatchers(
          runtime.dispatchers,
          pluginsDir,
          {
            engine: config.name,
            worker,
            prefix,
            store: () => engine.handle.store(),
            publish: (exchange, key, body) => engine.publishRaw(exchange, key, body),
            alertsExchange: runtime.alertsExchange,
          },
          log,
        );
      const later = members.length; // engines after this one are built later: looked up when an event comes
      members.push(
        new Engine({
          prefix,
          config,
          known: new Set(engines.keys()),
          worker,
          broker,
          registry,
          logger: log,
          publishQueue: o.publishQueue,
          consumeQueue: o.consumeQueue,
          statsInterval,
          runtime,
          dispatchers: dispatchersOf,
          store: store.get,
          storeNow: store.now,
          closesStore: false,
          ...(names.length > 1
            ? {
                local: (queue: string) => members.slice(later + 1).find((m) => m.home === queue)?.stage,
                partitionBy: group.partitionBy,
              }
            : {}),
        }),
      );
    }
    const fused = new FusedEngines(members);
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'stopping');
      void fused
        .stop()
        .then(() => store.close())
        .then(() => process.exit(0));
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    const queues = members.map((m) => m.queue).join(',');
    logger.info({ queue: queues, next: o.publishQueue ?? configs.at(-1)!.next.join(',') }, 'starting');
    await fused.start();
    logger.info({ queue: queues }, 'consuming');
    return -1; // keep running
  } catch (e) {
    if (
      e instanceof UsageProblem ||
      e instanceof ConfigError ||
      e instanceof PluginError ||
      /unknown task|event dispatcher/.test((e as Error).message)
    ) {
      process.stderr.write(`engine-launcher: ${(e as Error).message}\n`);
      return 2;
    }
    process.stderr.write(`engine-launcher: ${(e as Error).stack ?? String(e)}\n`);
    return 1;
  }
}

const code = await main(process.argv.slice(2));
if (code >= 0) process.exit(code);
