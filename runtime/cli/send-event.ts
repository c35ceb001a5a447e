#!/usr/bin/env node
import path from 'node:path';
import { Command } from 'commander';
import { connectAny } from '../amqp/connection.js';
import { prefixFrom, readBrokerConfig, readIni } from '../config/files.js';
import { checkEvent, routingKey } from '../event/canopsis-event.js';
import { apiClient } from '../web/client.js';
import { parseOrExit } from './args.js';

/*
 * PREFIX/bin/send-event: one event, from flags or JSON, to canopsis.events
 * (with a publisher confirm) or through the REST API with --api. Checked
 * like the cleaner checks it before anything is sent.
 */

const cmd = new Command('send-event')
  .description('Send a Canopsis event to the broker (default) or through the REST API (--api).')
  .option('--json <event>', 'the whole event as JSON ("-" reads stdin)')
  .option('--connector <s>', 'connector type', 'cli')
  .option('--connector-name <s>', 'connector instance', 'send-event')
  .option('--event-type <s>', 'check, ack, cancel, ...', 'check')
  .option('--source-type <s>', 'component or resource')
  .option('--component <s>', 'component')
  .option('--resource <s>', 'resource (makes source_type resource)')
  .option('--state <n>', 'state 0..3')
  .option('--output <s>', 'output text', '')
  .option('--author <s>', 'author (ack, cancel, ...)')
  .option('--api', 'POST to the REST API of etc/webserver.conf with the API key')
  .option('--prefix <dir>', 'installed tree (default: $CPS_PREFIX)')
  .exitOverride();

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

parseOrExit(cmd);

const o = cmd.opts<Record<string, string | boolean | undefined>>();
try {
  const prefix = prefixFrom(process.env, o.prefix as string | undefined);
  let event: Record<string, unknown>;
  if (o.json) event = JSON.parse(o.json === '-' ? await readStdin() : String(o.json)) as Record<string, unknown>;
  else
    event = {
      connector: o.connector,
      connector_name: o.connectorName,
      event_type: o.eventType,
      source_type: o.sourceType ?? (o.resource ? 'resource' : 'component'),
      component: o.component,
      ...(o.resource ? { resource: o.resource } : {}),
      ...(o.state !== undefined ? { state: Number(o.state) } : {}),
      output: o.output,
      ...(o.author ? { author: o.author } : {}),
    };
  const r = checkEvent(event);
  if (!r.ok) throw new Error(`not sent: ${r.reason}`);
  if (o.api) {
    const secrets = await readIni(path.join(prefix, 'etc', 'canopsis-secrets.ini'));
    const api = await apiClient(prefix);
    try {
      const res = await api.fetch('/event', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-canopsis-authkey': secrets.api?.authkey ?? '' },
        body: JSON.stringify(r.event),
      });
      const body = (await res.json()) as { sent_events?: unknown[]; failed_reasons?: string[]; retry_events?: unknown[] };
      if (body.retry_events?.length) throw new Error('the API could not hand it to the broker: send it again');
      if (res.status !== 200 || !body.sent_events?.length)
        throw new Error(`the API refused it (${res.status}): ${body.failed_reasons?.[0] ?? JSON.stringify(body)}`);
    } catch (e) {
      // fetch says "fetch failed" and keeps the reason (refused, certificate) in its cause.
      const cause = (e as { cause?: Error }).cause;
      throw new Error(`${api.base}/event: ${(e as Error).message}${cause ? `: ${cause.message}` : ''}`);
    } finally {
      await api.close();
    }
  } else {
    const b = await readBrokerConfig(prefix);
    const conn = await connectAny(b.urls, b.wheres);
    const ch = await conn.createConfirmChannel();
    ch.publish(b.exchange, routingKey(r.event), Buffer.from(JSON.stringify(r.event)), {
      persistent: true,
      contentType: 'application/json',
    });
    await ch.waitForConfirms();
    await ch.close();
    await conn.close();
  }
  process.stdout.write(`sent ${routingKey(r.event)}\n`);
} catch (e) {
  process.stderr.write(`send-event: ${(e as Error).message}\n`);
  process.exit(1);
}
