import net from 'node:net';
import type { CheckFailure } from '../errors.js';
import type { Prepared } from '../prepare.js';
import { brokerHosts, hasRole, runsBroker, runsMongodb, runsPostgresql, usesStore } from '../settings/roles.js';

/*
 * The parts of the site this host uses and does not run: the broker
 * cluster's nodes and a networked store. Each must answer before anything
 * is installed here, and what does not is named with its address. One
 * broker node that answers is enough: the clients fail over.
 */

const TIMEOUT_MS = 3000;

/** Why a TCP connection to host:port fails, or undefined when it opens. */
export function tcpAnswer(host: string, port: number, timeoutMs = TIMEOUT_MS): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (why: string | undefined) => {
      socket.destroy();
      resolve(why);
    };
    socket.setTimeout(timeoutMs, () => done(`no answer in ${timeoutMs / 1000} s`));
    socket.once('connect', () => done(undefined));
    socket.once('error', (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
  });
}

/** The broker login of this host's settings, tried on one node: a wrong shared password is the classic mistake of a new site. */
async function brokerLogin(p: Prepared, host: string): Promise<string | undefined> {
  const { default: amqp } = await import('amqplib');
  const r = p.settings.rabbitmq;
  const h = host.includes(':') ? `[${host}]` : host;
  const url = `amqp://${encodeURIComponent(r.user)}:${encodeURIComponent(p.secrets.rabbitmq.password)}@${h}:${r.port}/${encodeURIComponent(r.vhost)}`;
  try {
    const conn = await amqp.connect(url, { timeout: TIMEOUT_MS });
    await conn.close().catch(() => undefined);
    return undefined;
  } catch (e) {
    const m = (e as Error).message;
    return /ACCESS_REFUSED|403/.test(m)
      ? `refuses the login of ${r.user} on vhost ${r.vhost}: [rabbitmq] password of canopsis-secrets.ini must be the broker hosts' own`
      : m;
  }
}

function storeAddress(p: Prepared): { what: string; host: string; port: number } | undefined {
  const s = p.settings;
  if (!usesStore(s) || runsPostgresql(s) || runsMongodb(s) || s.store.backend === 'embedded') return undefined;
  const url = s.store.backend === 'postgresql' ? p.secrets.store.postgresql_url : p.ctx.store.url;
  if (!url) return undefined;
  try {
    const u = new URL(url);
    // mongodb+srv and replica-set lists are the driver's to resolve; the first host is checked.
    const host = u.hostname.replace(/^\[|\]$/g, '');
    const port = Number(u.port) || (s.store.backend === 'postgresql' ? 5432 : 27017);
    return { what: `store (${s.store.backend})`, host, port };
  } catch {
    return undefined;
  }
}

export async function remoteChecks(p: Prepared): Promise<CheckFailure[]> {
  const failures: CheckFailure[] = [];
  const s = p.settings;
  // Every role but a lone store talks to the broker (collectd sends there too).
  const usesBroker = hasRole(s, 'engines') || hasRole(s, 'webserver') || s.collectd.enabled;
  if (usesBroker && !runsBroker(s)) {
    const hosts = brokerHosts(s);
    const answers = await Promise.all(hosts.map(async (h) => ({ h, why: await tcpAnswer(h, s.rabbitmq.port) })));
    const up = answers.filter((a) => !a.why);
    if (up.length === 0)
      failures.push({
        check: 'remote',
        found: `no broker node answers: ${answers.map((a) => `${a.h}:${s.rabbitmq.port} (${a.why})`).join(', ')}`,
        needed: 'one node of the broker cluster reachable from this host',
        fix: 'install and start the broker hosts first (./build-install --start on each), or correct [rabbitmq] cluster_nodes / host and port',
      });
    else {
      const refused = await brokerLogin(p, up[0]!.h);
      if (refused)
        failures.push({
          check: 'remote',
          found: `the broker node ${up[0]!.h}:${s.rabbitmq.port} ${refused}`,
          needed: "a login the broker cluster accepts (the same [rabbitmq] user, password and vhost as the broker hosts')",
          fix: "--set rabbitmq.password=... with the broker hosts' password (their canopsis-secrets.ini)",
        });
    }
  }
  const store = storeAddress(p);
  if (store) {
    const why = await tcpAnswer(store.host, store.port);
    if (why)
      failures.push({
        check: 'remote',
        found: `the ${store.what} at ${store.host}:${store.port} does not answer (${why})`,
        needed: 'the networked store reachable from this host',
        fix: 'install and start the store host first, or correct [store] postgresql_url (or mongodb_url) in canopsis-secrets.ini',
      });
  }
  return failures;
}
