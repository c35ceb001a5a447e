#!/usr/bin/env node
import path from 'node:path';
import type { ChannelModel, ConfirmChannel } from 'amqplib';
import { Command } from 'commander';
import { BrokerConnection } from '../amqp/connection.js';
import { deadQueue, declareExchanges, engineQueue, queueCounts } from '../amqp/topology.js';
import { readEngines } from '../config/engines.js';
import { prefixFrom, readBrokerConfig, readIni } from '../config/files.js';
import { openStore, readRuntimeConfig } from '../config/runtime.js';
import { routingKey } from '../event/canopsis-event.js';
import { createLogger } from '../log.js';
import { readCredentials } from '../web/auth.js';
import { buildServer, type QueueStat } from '../web/server.js';

/*
 * PREFIX/bin/webserver: the REST API on [server] bind:port of
 * etc/webserver.conf, publishing to the broker of etc/amqp.conf and reading
 * the store of etc/runtime.conf.
 */

const cmd = new Command('webserver')
  .description('Serve the Canopsis REST API on [server] bind:port of etc/webserver.conf.')
  .option('--prefix <dir>', 'installed tree (default: $CPS_PREFIX)')
  .exitOverride();

try {
  cmd.parse(process.argv.slice(2), { from: 'user' });
} catch (e) {
  const code = (e as { code?: string }).code;
  process.exit(code === 'commander.helpDisplayed' || code === 'commander.help' ? 0 : 2);
}

const logger = createLogger('info', { service: 'webserver' });
try {
  const prefix = prefixFrom(process.env, cmd.opts<{ prefix?: string }>().prefix);
  const conf = await readIni(path.join(prefix, 'etc', 'webserver.conf'));
  const bind = conf.server?.bind ?? '0.0.0.0';
  const port = Number(conf.server?.port ?? 8082);
  const broker = await readBrokerConfig(prefix);
  const runtime = await readRuntimeConfig(prefix);
  const credentials = await readCredentials(path.join(prefix, 'etc', 'canopsis-secrets.ini'), path.join(prefix, 'etc', 'api-users.ini'));
  const { engines } = await readEngines(prefix);
  const store = await openStore(runtime);

  let ch: ConfirmChannel | undefined;
  let conn: ChannelModel | undefined;
  const connection = new BrokerConnection({
    url: broker.url,
    where: broker.where,
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
      ch.publish(broker.exchange, routingKey(event), Buffer.from(JSON.stringify(event)), { persistent: true, contentType: 'application/json' }, (err) => (err ? reject(err) : resolve()));
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

  const app = buildServer({ store, credentials, publish, brokerReady: async () => connection.connected && ch !== undefined, queueStats });
  await app.listen({ host: bind, port });
  logger.info({ bind, port, store: store.kind }, 'listening');
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
