import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { type ApiClient, apiClient } from '../../runtime/web/client.js';
import { selfSignedCert } from './api.js';
import { type EngineProcess, freshVhost, startEngine, stopEngine, type Vhost, whenConsuming, writeRuntimePrefix } from './broker.js';
import { ROOT, removeDir, tempDir, waitFor } from './index.js';

/*
 * The stack API tests run against: cleaner -> che -> axe on a fresh vhost
 * of the machine's RabbitMQ, the embedded store, and the webserver over
 * HTTPS with a self-signed certificate at the default etc/ssl/ paths.
 */

export const API_CHAIN = `
[engine:cleaner]
event_processing=canopsis.cleaner.process.event_processing
next=che
exchange=canopsis.events

[engine:che]
event_processing=canopsis.che.process.event_processing
next=axe

[engine:axe]
event_processing=canopsis.axe.process.event_processing
beat_processing=canopsis.axe.process.beat_processing
beat_interval=0.3
`;

export interface ApiStackOptions {
  tag: string;
  port: number;
  authkey: string;
  /** etc/api-users.ini */
  users?: string;
  /** The [dispatchers] and [alarms] sections of etc/runtime.conf (the [store] one is written here). */
  runtime: string;
  plugins?: Record<string, string>;
  /** More lines for [server] of etc/webserver.conf. */
  server?: string;
  /** amqp2engines.conf and the engines to start, in order (default: cleaner -> che -> axe). */
  chain?: { conf: string; engines: string[] };
}

// biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON the API answers
export type Json = any;

export interface ApiStack {
  /** One API request with the stack's key: the status and the parsed body. */
  call(method: string, url: string, body?: unknown): Promise<{ status: number; body: Json }>;
  dir: string;
  /** The AMQP URL of the stack's vhost. */
  vhostUrl: string;
  client: ApiClient;
  /** In the order started (default cleaner, che, axe). */
  engines: EngineProcess[];
  webLogs(): string;
  stop(): Promise<void>;
}

export async function startApiStack(o: ApiStackOptions): Promise<ApiStack> {
  const vhost: Vhost = await freshVhost(o.tag);
  const dir = await tempDir(o.tag);
  await writeRuntimePrefix(dir, {
    vhost: vhost.name,
    engines: o.chain?.conf ?? API_CHAIN,
    ...(o.plugins ? { plugins: o.plugins } : {}),
    files: {
      'etc/runtime.conf': `[store]\nbackend = embedded\nfile = ${dir}/var/lib/canopsis/canopsis.db\n\n${o.runtime}`,
      'etc/canopsis-secrets.ini': `[rabbitmq]\npassword = guest\n\n[api]\nauthkey = ${o.authkey}\n`,
      'etc/webserver.conf': `[server]\nbind = 127.0.0.1\nport = ${o.port}\ntls = true\n${o.server ?? ''}`,
      ...(o.users ? { 'etc/api-users.ini': o.users } : {}),
    },
  });
  await selfSignedCert(path.join(dir, 'etc', 'ssl'));
  const client = await apiClient(dir);
  const engines: EngineProcess[] = [];
  for (const name of o.chain?.engines ?? ['cleaner', 'che', 'axe']) {
    const p = startEngine(dir, name);
    engines.push(p);
    await whenConsuming(p);
  }
  let logs = '';
  const web: ResultPromise<{ reject: false; all: true; buffer: true }> = execa(
    process.execPath,
    [path.join(ROOT, 'dist', 'runtime', 'cli', 'webserver.js'), '--prefix', dir],
    { reject: false, all: true, buffer: true },
  );
  web.all?.on('data', (d: Buffer) => (logs += d.toString()));
  await waitFor('the API healthy', async () => (await client.fetch('/healthcheck').catch(() => undefined))?.status === 200, 30_000);
  return {
    call: async (method, url, body) => {
      const headers: Record<string, string> = { 'x-canopsis-authkey': o.authkey };
      if (body !== undefined) headers['content-type'] = 'application/json';
      const r = await client.fetch(`${client.origin}${url}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await r.text();
      return { status: r.status, body: text ? JSON.parse(text) : undefined };
    },
    dir,
    vhostUrl: vhost.url,
    client,
    engines,
    webLogs: () => logs,
    stop: async () => {
      web.kill('SIGTERM');
      await web;
      await client.close();
      await Promise.all(engines.map((p) => stopEngine(p)));
      await vhost.remove();
      await removeDir(dir);
    },
  };
}
