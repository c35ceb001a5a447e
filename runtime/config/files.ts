import { readFile } from 'node:fs/promises';
import path from 'node:path';
import ini from 'ini';
import { layoutOf } from '../contract/layout.js';
import { EXCHANGES } from '../contract/names.js';
import { ConfigError } from './errors.js';

/*
 * The runtime's view of the installed tree: the prefix comes from
 * CPS_PREFIX (set by the bin/ wrappers) and every file is read from its etc/.
 */

export function prefixFrom(env: NodeJS.ProcessEnv = process.env, explicit?: string): string {
  const p = explicit ?? env.CPS_PREFIX;
  if (!p) throw new ConfigError('CPS_PREFIX', 'not set: run through PREFIX/bin/engine-launcher or pass --prefix');
  return path.resolve(p);
}

export async function readIni(file: string): Promise<Record<string, Record<string, string>>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, `cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return ini.parse(text) as Record<string, Record<string, string>>;
}

/** A client cannot connect to 0.0.0.0 or ::, it connects to the loopback of that family. */
export function clientAddress(bind: string): string {
  if (bind === '0.0.0.0') return '127.0.0.1';
  if (bind === '::' || bind === '[::]') return '::1';
  return bind;
}

export interface WebserverConf {
  file: string;
  bind: string;
  port: number;
  /** Absent without tls = true: plain HTTP. */
  tls?: { cert: string; key: string };
  /** Seconds a login session (the token of POST /api/v4/login) lasts; [server] session_ttl, default a day. */
  sessionTtl?: number;
}

/**
 * [server] of etc/webserver.conf. HTTPS with tls = true (what the installer
 * renders by default); the certificate and key default to
 * etc/ssl/webserver.crt and .key, where the installer generates a
 * self-signed pair.
 */
export async function readWebserverConf(prefix: string): Promise<WebserverConf> {
  const file = layoutOf(prefix).files.webserver;
  const server = (await readIni(file)).server ?? {};
  const port = Number(server.port ?? 8082);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new ConfigError(file, `[server] port: found "${server.port}", expected 0..65535`);
  // ini turns true/false into booleans; a quoted value stays a string. A file without the key predates
  // HTTPS (0.3.0's, or an operator's copy kept over ours): its webserver served plain HTTP.
  const tls = String(server.tls ?? 'false').toLowerCase();
  if (tls !== 'true' && tls !== 'false') throw new ConfigError(file, `[server] tls: found "${server.tls}", expected true or false`);
  const pathOf = (key: 'tls_cert' | 'tls_key', d: string) => {
    const v = server[key];
    if (v !== undefined && typeof v !== 'string')
      throw new ConfigError(file, `[server] ${key}: expected a file path, found "${String(v)}"`);
    return path.resolve(prefix, v || path.join('etc', 'ssl', d));
  };
  const ttl = server.session_ttl === undefined ? undefined : Number(server.session_ttl);
  if (ttl !== undefined && (!Number.isInteger(ttl) || ttl < 1))
    throw new ConfigError(file, `[server] session_ttl: found "${server.session_ttl}", expected a number of seconds, 1 or more`);
  return {
    file,
    bind: server.bind || '0.0.0.0',
    port,
    ...(ttl !== undefined ? { sessionTtl: ttl } : {}),
    ...(tls === 'true' ? { tls: { cert: pathOf('tls_cert', 'webserver.crt'), key: pathOf('tls_key', 'webserver.key') } } : {}),
  };
}

/** The origin of the REST API as a local client reaches it: https when tls = true. */
export function apiOrigin(conf: WebserverConf): string {
  const host = clientAddress(conf.bind);
  return `${conf.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${conf.port}`;
}

/** The REST API's base URL as a local client reaches it, from etc/webserver.conf. */
export async function apiBase(prefix: string): Promise<string> {
  return `${apiOrigin(await readWebserverConf(prefix))}/api/v4`;
}

export interface BrokerConfig {
  /** The first node's: a broker host lists its own node first. */
  url: string;
  /** For messages; the password is never logged. */
  where: string;
  /** Every node's URL, in the order a client tries them (a cluster has several); `wheres` likewise. */
  urls: string[];
  wheres: string[];
  /** quorum: engine queues are replicated over the cluster's nodes (a cluster of three or more). */
  queueType: 'classic' | 'quorum';
  vhost: string;
  exchange: string;
  deadLetterExchange: string;
  prefetch: number;
}

export async function readBrokerConfig(prefix: string): Promise<BrokerConfig> {
  const file = layoutOf(prefix).files.amqp;
  const m = (await readIni(file)).master;
  if (!m) throw new ConfigError(file, 'no [master] section');
  for (const k of ['host', 'port', 'userid', 'password', 'virtual_host']) {
    if (!m[k]) throw new ConfigError(file, `[master] ${k} is missing`);
  }
  const port = Number(m.port);
  const prefetch = Number(m.prefetch ?? 1000);
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new ConfigError(file, `[master] port: found "${m.port}", expected 1..65535`);
  if (!Number.isInteger(prefetch) || prefetch < 1)
    throw new ConfigError(file, `[master] prefetch: found "${m.prefetch}", expected a positive integer`);
  const queueType = m.queue_type ?? 'classic';
  if (queueType !== 'classic' && queueType !== 'quorum')
    throw new ConfigError(file, `[master] queue_type: found "${m.queue_type}", expected classic or quorum`);
  const hosts = String(m.host)
    .split(',')
    .map((h) => h.trim())
    .filter(Boolean)
    .map((h) => (h.includes(':') ? `[${h}]` : h));
  if (hosts.length === 0) throw new ConfigError(file, '[master] host is missing');
  const urls = hosts.map(
    (host) =>
      `amqp://${encodeURIComponent(m.userid!)}:${encodeURIComponent(m.password!)}@${host}:${port}/${encodeURIComponent(m.virtual_host!)}`,
  );
  const wheres = hosts.map((host) => `amqp://${m.userid}@${host}:${port}/${m.virtual_host}`);
  return {
    url: urls[0]!,
    where: wheres[0]!,
    urls,
    wheres,
    queueType,
    vhost: m.virtual_host!,
    exchange: m.exchange_name || EXCHANGES.events,
    deadLetterExchange: m.dead_letter_exchange || EXCHANGES.dead,
    prefetch,
  };
}
