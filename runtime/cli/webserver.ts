#!/usr/bin/env node
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { ChannelModel, ConfirmChannel } from 'amqplib';
import { Command } from 'commander';
// The same reading of supervisord as hypcontrol status (the release carries dist/installer).
import { Supervisor } from '../../installer/control/supervisor.js';
import { BrokerConnection } from '../amqp/connection.js';
import { peek, replayLetters } from '../amqp/dead-letters.js';
import { deadQueue, declareExchanges, dispatcherQueue, engineQueue, queueCounts } from '../amqp/topology.js';
import { readEngines } from '../config/engines.js';
import { prefixFrom, readBrokerConfig, readWebserverConf, type WebserverConf } from '../config/files.js';
import { openStore, readRuntimeConfig } from '../config/runtime.js';
import { routingKey } from '../event/canopsis-event.js';
import { createLogger } from '../log.js';
import { readCredentials } from '../web/auth.js';
import { bundledConsole } from '../web/console.js';
import type { DeadLetterAccess, ProcessState } from '../web/routes/platform.js';
import { buildServer, type QueueStat } from '../web/server.js';
import { parseOrExit } from './args.js';

/*
 * PREFIX/bin/webserver: the REST API on [server] bind:port of
 * etc/webserver.conf, over HTTPS with [server] tls_cert/tls_key unless
 * tls = false, publishing to the broker of etc/amqp.conf and reading the
 * store of etc/runtime.conf.
 */

const cmd = new Command('webserver')
  .description('Serve the Canopsis REST API on [server] bind:port of etc/webserver.conf.')
  .option('--prefix <dir>', 'installed tree (default: $CPS_PREFIX)')
  .exitOverride();

parseOrExit(cmd);

/** The certificate and key, checked here so that a bad file is named instead of an OpenSSL code. */
async function readTls(conf: WebserverConf): Promise<{ cert: string; key: string } | undefined> {
  if (!conf.tls) return undefined;
  const read = async (file: string, what: string, setting: string, check: (pem: string) => unknown) => {
    const where = `${file} ([server] ${setting} of ${conf.file})`;
    let pem: string;
    try {
      pem = await readFile(file, 'utf8');
    } catch (e) {
      throw new Error(
        `cannot read the TLS ${what} ${where}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; point ${setting} at a readable PEM file, or set tls = false for plain HTTP`,
      );
    }
    try {
      check(pem);
    } catch (e) {
      throw new Error(`the TLS ${what} ${where} is not a PEM ${what}: ${(e as Error).message}`);
    }
    return pem;
  };
  const cert = await read(conf.tls.cert, 'certificate', 'tls_cert', (pem) => new X509Certificate(pem));
  const key = await read(conf.tls.key, 'key', 'tls_key', (pem) => createPrivateKey(pem));
  if (!new X509Certificate(cert).checkPrivateKey(createPrivateKey(key)))
    throw new Error(`the TLS key ${conf.tls.key} does not belong to the certificate ${conf.tls.cert}`);
  return { cert, key };
}

/** The version of the release this runs from (its package.json, beside dist/). */
async function releaseVersion(): Promise<string> {
  const file = new URL('../../../package.json', import.meta.url);
  return ((JSON.parse(await readFile(file, 'utf8')) as { version?: string }).version ?? 'unknown').toString();
}

const logger = createLogger('info', { service: 'webserver' });
try {
  const prefix = prefixFrom(process.env, cmd.opts<{ prefix?: string }>().prefix);
  const conf = await readWebserverConf(prefix);
  const { bind, port } = conf;
  const https = await readTls(conf);
  const broker = await readBrokerConfig(prefix);
  const runtime = await readRuntimeConfig(prefix);
  const credentials = await readCredentials(path.join(prefix, 'etc', 'canopsis-secrets.ini'), path.join(prefix, 'etc', 'api-users.ini'));
  const { engines } = await readEngines(prefix);
  const store = await openStore(runtime);

  let ch: ConfirmChannel | undefined;
  let conn: ChannelModel | undefined;
  const connection = new BrokerConnection({
    urls: broker.urls,
    wheres: broker.wheres,
    logger,
    setup: async (c) => {
      const channel = await c.createConfirmChannel();
      channel.on('error', () => undefined);
      await declareExchanges(channel, { eventsExchange: broker.exchange, deadExchange: broker.deadLetterExchange });
      ch = channel;
      conn = c;
      c.once('close', () => {
        ch = undefined;
        conn = undefined;
      });
    },
  });
  void connection.start();

  const publish = (event: Record<string, unknown>) =>
    new Promise<void>((resolve, reject) => {
      if (!ch) return reject(new Error('broker not connected'));
      ch.publish(
        broker.exchange,
        routingKey(event),
        Buffer.from(JSON.stringify(event)),
        { persistent: true, contentType: 'application/json' },
        (err) => (err ? reject(err) : resolve()),
      );
    });

  const dispatchJob = (engine: string, job: unknown) =>
    new Promise<void>((resolve, reject) => {
      if (!engines.has(engine)) return resolve();
      if (!ch) return reject(new Error('broker not connected'));
      ch.sendToQueue(dispatcherQueue(engine), Buffer.from(JSON.stringify(job)), { persistent: true }, (err) =>
        err ? reject(err) : resolve(),
      );
    });

  const queueStats = async (): Promise<QueueStat[]> => {
    if (!conn) return [];
    const out: QueueStat[] = [];
    for (const name of engines.keys()) {
      const q = await queueCounts(conn, engineQueue(name));
      const dead = await queueCounts(conn, deadQueue(engineQueue(name)));
      out.push({ engine: name, queue: engineQueue(name), messages: q.messages, consumers: q.consumers, dead: dead.messages });
    }
    return out;
  };

  /** A channel of its own per request: peeking holds messages unacked until it is closed. */
  const withDeadLetters = async <T>(fn: (c: ConfirmChannel) => Promise<T>): Promise<T> => {
    if (!conn) throw new Error('broker not connected');
    const c = await conn.createConfirmChannel();
    c.on('error', () => undefined);
    try {
      return await fn(c);
    } finally {
      await c.close().catch(() => undefined);
    }
  };
  const deadLetters: DeadLetterAccess = {
    list: (engine, limit) =>
      withDeadLetters(async (c) =>
        (await peek(c, engineQueue(engine), limit)).map((l) => {
          let event: unknown;
          try {
            event = JSON.parse(l.body.toString('utf8'));
          } catch {
            event = l.body.toString('utf8').slice(0, 2000);
          }
          return { index: l.index, reason: l.reason, deadAt: l.deadAt, event };
        }),
      ),
    replay: (engine, reason) =>
      withDeadLetters((c) => replayLetters(c, engineQueue(engine), reason === undefined ? {} : { reasonIs: reason }, 100_000)),
  };
  const consoleDir = bundledConsole();
  // supervisord runs as the service user, as this webserver does: its socket answers us (hypcontrol's view).
  // Under systemd there is none, and the platform page shows what the webserver itself sees.
  const supervisor = new Supervisor(prefix);
  let seen: { at: number; processes: ProcessState[] | undefined } | undefined;
  const processes = async () => {
    if (seen && Date.now() - seen.at < 5000) return seen.processes;
    const list = (await supervisor.running().catch(() => false)) ? await supervisor.status() : undefined;
    seen = { at: Date.now(), processes: list };
    return list;
  };

  const app = await buildServer({
    store,
    credentials,
    publish,
    brokerReady: async () => connection.connected && ch !== undefined,
    queueStats,
    dispatchJob,
    engines: [...engines.keys()],
    ...(conf.sessionTtl ? { tokenTtl: conf.sessionTtl } : {}),
    deadLetters,
    processes,
    ...(consoleDir ? { consoleDir } : {}),
    version: await releaseVersion(),
    ...(https ? { https } : {}),
  });
  await app.listen({ host: bind, port });
  logger.info({ bind, port, tls: https ? conf.tls!.cert : false, store: store.kind }, 'listening');
  const stop = async () => {
    await app.close();
    await connection.close(async () => {
      await ch?.close().catch(() => undefined);
    });
    await store.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
} catch (e) {
  process.stderr.write(`webserver: ${(e as Error).message}\n`);
  process.exit(2);
}
