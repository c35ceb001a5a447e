import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import amqp, { type ChannelModel } from 'amqplib';
import { execa, type ResultPromise } from 'execa';
import { ROOT, waitFor } from './index.js';

/*
 * The machine's RabbitMQ (127.0.0.1:5672, guest) with a fresh vhost per
 * test file, deleted afterwards; engines run as real processes on a
 * throwaway prefix holding only what the runtime reads.
 */

export const LAUNCHER = path.join(ROOT, 'dist', 'runtime', 'cli', 'engine-launcher.js');

export interface Vhost {
  name: string;
  url: string;
  remove: () => Promise<void>;
}

export async function freshVhost(tag: string): Promise<Vhost> {
  const name = `cps-test-${tag}-${randomBytes(4).toString('hex')}`;
  await execa('rabbitmqctl', ['-q', 'add_vhost', name]);
  await execa('rabbitmqctl', ['-q', 'set_permissions', '-p', name, 'guest', '.*', '.*', '.*']);
  return {
    name,
    url: `amqp://guest:guest@127.0.0.1:5672/${encodeURIComponent(name)}`,
    remove: async () => {
      await execa('rabbitmqctl', ['-q', 'delete_vhost', name], { reject: false });
    },
  };
}

export async function writeRuntimePrefix(
  prefix: string,
  opts: { vhost: string; engines: string; plugins?: Record<string, string>; files?: Record<string, string>; prefetch?: number },
): Promise<void> {
  await mkdir(path.join(prefix, 'etc'), { recursive: true });
  await mkdir(path.join(prefix, 'lib', 'canopsis', 'plugins'), { recursive: true });
  await writeFile(
    path.join(prefix, 'etc', 'amqp.conf'),
    `[master]\nhost = 127.0.0.1\nport = 5672\nuserid = guest\npassword = guest\nvirtual_host = ${opts.vhost}\nexchange_name = canopsis.events\ndead_letter_exchange = canopsis.dead\nprefetch = ${opts.prefetch ?? 1000}\n`,
  );
  await writeFile(path.join(prefix, 'etc', 'amqp2engines.conf'), opts.engines);
  for (const [name, code] of Object.entries(opts.plugins ?? {}))
    await writeFile(path.join(prefix, 'lib', 'canopsis', 'plugins', name), code);
  for (const [rel, text] of Object.entries(opts.files ?? {})) {
    await mkdir(path.dirname(path.join(prefix, rel)), { recursive: true });
    await writeFile(path.join(prefix, rel), text);
  }
}

export type EngineProcess = ResultPromise<{ reject: false; all: true; buffer: true }> & { logs: () => string };

/** One engine process; names joined by commas run fused (-e fused). */
export function startEngine(prefix: string, name: string, worker = 0, extra: string[] = []): EngineProcess {
  const p = execa(
    process.execPath,
    [
      LAUNCHER,
      '-e',
      name.includes(',') ? 'fused' : 'dynamic',
      '-n',
      name,
      '-w',
      String(worker),
      '-l',
      'info',
      '--prefix',
      prefix,
      '--stats-interval',
      '0',
      ...extra,
    ],
    {
      reject: false,
      all: true,
      buffer: true,
    },
  );
  // Everything the process printed so far, from its first line.
  let seen = '';
  p.all?.on('data', (d: Buffer) => {
    seen += d.toString();
  });
  return Object.assign(p, { logs: () => seen });
}

/** Resolves when the engine logged that it consumes its queue. */
export async function whenConsuming(p: EngineProcess, timeoutMs = 20_000): Promise<void> {
  await waitFor(
    'the engine to consume',
    async () => {
      if (p.nodeChildProcess.exitCode !== null && p.nodeChildProcess.exitCode !== undefined)
        throw new Error(`engine exited ${p.nodeChildProcess.exitCode}: ${p.logs()}`);
      return /"msg":"consuming"/.test(p.logs());
    },
    timeoutMs,
    50,
  );
}

export async function connect(url: string): Promise<ChannelModel> {
  return amqp.connect(url);
}

/** Publishes events to canopsis.events with confirms. */
export async function publishEvents(url: string, events: unknown[], raw = false): Promise<void> {
  const conn = await amqp.connect(url);
  try {
    const ch = await conn.createConfirmChannel();
    await ch.assertExchange('canopsis.events', 'topic', { durable: true });
    for (const e of events) {
      const body = raw ? Buffer.from(e as string) : Buffer.from(JSON.stringify(e));
      if (!ch.publish('canopsis.events', 'test', body, { persistent: true })) await new Promise((r) => ch.once('drain', r));
    }
    await ch.waitForConfirms();
    await ch.close();
  } finally {
    await conn.close();
  }
}

export interface Collector {
  messages: Array<{ body: Buffer; headers: Record<string, unknown> }>;
  stop: () => Promise<void>;
}

/** Consumes a queue (declared durable like the engines do) and keeps what arrives. */
export async function collect(url: string, queue: string, args?: Record<string, unknown>): Promise<Collector> {
  const conn = await amqp.connect(url);
  const ch = await conn.createChannel();
  await ch.assertQueue(queue, { durable: true, ...(args ? { arguments: args } : {}) });
  await ch.prefetch(5000);
  const messages: Collector['messages'] = [];
  const { consumerTag } = await ch.consume(queue, (m) => {
    if (!m) return;
    messages.push({ body: m.content, headers: (m.properties.headers ?? {}) as Record<string, unknown> });
    ch.ack(m);
  });
  return {
    messages,
    stop: async () => {
      await ch.cancel(consumerTag).catch(() => undefined);
      await ch.close().catch(() => undefined);
      await conn.close().catch(() => undefined);
    },
  };
}

export const engineQueueArgs = (queue: string) => ({
  'x-dead-letter-exchange': 'canopsis.dead',
  'x-dead-letter-routing-key': `${queue}.dead`,
});

export function checkEvent(n: number, extra: Record<string, unknown> = {}) {
  return {
    connector: 'nagios',
    connector_name: 'nagios1',
    event_type: 'check',
    source_type: 'resource',
    component: `host${n % 10}`,
    resource: `svc${n}`,
    state: n % 4,
    output: `event ${n}`,
    seq: n,
    ...extra,
  };
}

export async function stopEngine(p: EngineProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (p.nodeChildProcess.exitCode === null || p.nodeChildProcess.exitCode === undefined) p.kill(signal);
  await p;
}
