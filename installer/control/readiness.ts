import amqp from 'amqplib';
import { engineQueue, queueCounts } from '../../runtime/amqp/topology.js';
import { readEngines } from '../../runtime/config/engines.js';
import { readBrokerConfig } from '../../runtime/config/files.js';
import { openStore, readRuntimeConfig } from '../../runtime/config/runtime.js';
import { apiClient } from '../../runtime/web/client.js';

/*
 * "Ready" as an operator means it, per service: the broker accepts our
 * login on the vhost, the store answers, every engine consumes its queue,
 * the webserver's healthcheck says 200. Each check returns a reason when
 * not ready.
 */

export type Check = (prefix: string) => Promise<string | undefined>;

const broker: Check = async (prefix) => {
  const b = await readBrokerConfig(prefix);
  try {
    const conn = await amqp.connect(b.url);
    await conn.close();
    return undefined;
  } catch (e) {
    return `broker login on ${b.where} refused or unreachable: ${(e as Error).message}`;
  }
};

const store: Check = async (prefix) => {
  try {
    const s = await openStore(await readRuntimeConfig(prefix));
    await s.ping();
    await s.close();
    return undefined;
  } catch (e) {
    return `store not answering: ${(e as Error).message}`;
  }
};

const engines: Check = async (prefix) => {
  const b = await readBrokerConfig(prefix);
  const { engines: list } = await readEngines(prefix);
  let conn;
  try {
    conn = await amqp.connect(b.url);
  } catch (e) {
    return `broker unreachable: ${(e as Error).message}`;
  }
  try {
    const idle: string[] = [];
    for (const e of list.values()) {
      if (!e.eventProcessing) continue; // a beat-only engine consumes nothing
      if ((await queueCounts(conn, engineQueue(e.name))).consumers < 1) idle.push(e.name);
    }
    return idle.length ? `not consuming: ${idle.join(', ')}` : undefined;
  } finally {
    await conn.close().catch(() => undefined);
  }
};

const webserver: Check = async (prefix) => {
  let api;
  try {
    api = await apiClient(prefix);
  } catch (e) {
    return (e as Error).message;
  }
  try {
    const r = await api.fetch('/healthcheck', { signal: AbortSignal.timeout(5000) });
    return r.status === 200 ? undefined : `healthcheck answered ${r.status}: ${await r.text()}`;
  } catch (e) {
    // The reason (refused, certificate not trusted) is in fetch's cause.
    const cause = (e as { cause?: Error }).cause;
    return `healthcheck at ${api.base}/healthcheck unreachable: ${(e as Error).message}${cause ? `: ${cause.message}` : ''}`;
  } finally {
    await api.close();
  }
};

/** Readiness per service name of hypcontrol.conf; services without a deeper check rely on their process state. */
export const READY: Record<string, Check> = {
  'rabbitmq-server': broker,
  mongodb: store,
  amqp2engines: engines,
  webserver,
};
