import { readFile } from 'node:fs/promises';
import path from 'node:path';
import ini from 'ini';
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

/** The REST API's base URL as a local client reaches it, from etc/webserver.conf. */
export async function apiBase(prefix: string): Promise<string> {
  const server = (await readIni(path.join(prefix, 'etc', 'webserver.conf'))).server ?? {};
  const host = clientAddress(server.bind ?? '127.0.0.1');
  return `http://${host.includes(':') ? `[${host}]` : host}:${server.port ?? 8082}/api/v4`;
}

export interface BrokerConfig {
  url: string;
  /** For messages; the password is never logged. */
  where: string;
  vhost: string;
  exchange: string;
  deadLetterExchange: string;
  prefetch: number;
}

export async function readBrokerConfig(prefix: string): Promise<BrokerConfig> {
  const file = path.join(prefix, 'etc', 'amqp.conf');
  const m = (await readIni(file)).master;
  if (!m) throw new ConfigError(file, 'no [master] section');
  for (const k of ['host', 'port', 'userid', 'password', 'virtual_host']) {
    if (!m[k]) throw new ConfigError(file, `[master] ${k} is missing`);
  }
  const port = Number(m.port);
  const prefetch = Number(m.prefetch ?? 1000);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ConfigError(file, `[master] port: found "${m.port}", expected 1..65535`);
  if (!Number.isInteger(prefetch) || prefetch < 1) throw new ConfigError(file, `[master] prefetch: found "${m.prefetch}", expected a positive integer`);
  const host = m.host!.includes(':') ? `[${m.host}]` : m.host!;
  return {
    url: `amqp://${encodeURIComponent(m.userid!)}:${encodeURIComponent(m.password!)}@${host}:${port}/${encodeURIComponent(m.virtual_host!)}`,
    where: `amqp://${m.userid}@${host}:${port}/${m.virtual_host}`,
    vhost: m.virtual_host!,
    exchange: m.exchange_name || 'canopsis.events',
    deadLetterExchange: m.dead_letter_exchange || 'canopsis.dead',
    prefetch,
  };
}
