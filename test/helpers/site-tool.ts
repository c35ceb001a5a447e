#!/usr/bin/env node
import { ALARMS, type StoredAlarm } from '../../runtime/alarm/model.js';
import { connectAny } from '../../runtime/amqp/connection.js';
import { openStore } from '../../runtime/config/runtime.js';
import { routingKey } from '../../runtime/event/canopsis-event.js';
import type { Event } from '../../runtime/tasks/types.js';

/*
 * What the multi-host tests and benchmarks run inside a host's network
 * namespace (the test process itself cannot enter one):
 *
 *   publish URLS COUNT [RUN] [RATE]  COUNT check events, one per resource, to
 *                              canopsis.events of the cluster (URLS comma
 *                              separated), with publisher confirms. A lost
 *                              node sends the unconfirmed batch again to
 *                              the next one (at-least-once: duplicates are
 *                              the engines' to absorb). Prints progress
 *                              lines "published N" and a last JSON line;
 *                              RATE: at most that many events a second.
 *   count STORE_URL RUN [events]  the alarms of RUN's resources, and with
 *                              `events` the events they counted
 *                              (events_count), as one JSON line.
 *   sequence URLS N RUN        for each of N resources, four check events in
 *                              a row (states 3, 1, 2, then 1 + i % 3).
 *   states STORE_URL N RUN     how many of those N alarms end in the state
 *                              their last event gave: {alarms, right}.
 *   raw URLS BODY              BODY as it is, to canopsis.events.
 *   queue URLS TYPE COUNT      the broker alone: COUNT 1 KiB messages through
 *                              a fresh queue of TYPE (classic, quorum), with
 *                              confirms, then consumed and acked; rates as
 *                              one JSON line.
 */

const [cmd, a, b, c, d] = process.argv.slice(2);
const BATCH = 500;

function eventOf(run: string, i: number): Event {
  return {
    connector: 'site-test',
    connector_name: run,
    event_type: 'check',
    source_type: 'resource',
    component: `host-${i % 200}`,
    resource: `${run}-r${i}`,
    state: 2,
    output: `site test event ${i}`,
  } as Event;
}

async function publish(urls: string[], count: number, run: string, rate: number): Promise<void> {
  const wheres = urls.map((u) => u.replace(/\/\/[^@]*@/, '//'));
  let sent = 0;
  let reconnects = 0;
  const started = Date.now();
  while (sent < count) {
    try {
      const conn = await connectAny(urls.slice(reconnects % urls.length).concat(urls.slice(0, reconnects % urls.length)), wheres);
      conn.on('error', () => undefined);
      const ch = await conn.createConfirmChannel();
      ch.on('error', () => undefined);
      while (sent < count) {
        const end = Math.min(count, sent + BATCH);
        for (let i = sent; i < end; i++) {
          const e = eventOf(run, i);
          ch.publish('canopsis.events', routingKey(e), Buffer.from(JSON.stringify(e)), {
            persistent: true,
            contentType: 'application/json',
          });
        }
        await ch.waitForConfirms();
        sent = end;
        // Paced: the batch's share of the time, from the start (a reconnect catches up).
        const due = started + (sent / rate) * 1000 - Date.now();
        if (due > 0) await new Promise((r) => setTimeout(r, due));
        process.stdout.write(`published ${sent}\n`);
      }
      await conn.close().catch(() => undefined);
    } catch (e) {
      // The batch is sent again whole on the next node: what the broker had confirmed of it comes twice.
      reconnects++;
      process.stdout.write(`reconnecting after ${sent}: ${(e as Error).message}\n`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  process.stdout.write(`${JSON.stringify({ sent, reconnects, seconds: (Date.now() - started) / 1000 })}\n`);
}

const lastState = (i: number) => 1 + (i % 3);

async function sequence(urls: string[], n: number, run: string): Promise<void> {
  const conn = await connectAny(urls, urls);
  const ch = await conn.createConfirmChannel();
  for (let i = 0; i < n; i++) {
    // Each event its own output: the same event twice in one second is a redelivery to axe, applied once.
    for (const [k, state] of [3, 1, 2, lastState(i)].entries()) {
      const e = { ...eventOf(run, i), state, output: `event ${k}: state ${state}` };
      ch.publish('canopsis.events', routingKey(e), Buffer.from(JSON.stringify(e)), { persistent: true, contentType: 'application/json' });
    }
    if (i % 100 === 99) await ch.waitForConfirms();
  }
  await ch.waitForConfirms();
  await conn.close();
}

async function states(url: string, n: number, run: string): Promise<void> {
  const store = await openStore({ store: { backend: 'postgresql', url } } as Parameters<typeof openStore>[0]);
  try {
    const alarms = await store.collection<StoredAlarm>(ALARMS).find({ 'v.connector_name': run });
    const right = alarms.filter((x) => x.v.state.val === lastState(Number(/-r(\d+)$/.exec(x.v.resource ?? '')?.[1]))).length;
    process.stdout.write(`${JSON.stringify({ alarms: alarms.length, right, of: n })}\n`);
  } finally {
    await store.close();
  }
}

async function raw(urls: string[], body: string): Promise<void> {
  const conn = await connectAny(urls, urls);
  const ch = await conn.createConfirmChannel();
  ch.publish('canopsis.events', 'site.raw', Buffer.from(body), { persistent: true });
  await ch.waitForConfirms();
  await conn.close();
}

async function count(url: string, run: string, withEvents: boolean): Promise<void> {
  const store = await openStore({ store: { backend: 'postgresql', url } } as Parameters<typeof openStore>[0]);
  try {
    const alarms = store.collection<StoredAlarm>(ALARMS);
    // Polled while the site works: a count, not every document, unless the events are asked for.
    const n = await alarms.count({ 'v.connector_name': run });
    const events = withEvents
      ? (await alarms.find({ 'v.connector_name': run })).reduce((s, x) => s + (x.v.events_count ?? 0), 0)
      : undefined;
    process.stdout.write(`${JSON.stringify({ alarms: n, events })}\n`);
  } finally {
    await store.close();
  }
}

async function queue(urls: string[], type: string, count: number): Promise<void> {
  const conn = await connectAny(urls, urls);
  const ch = await conn.createConfirmChannel();
  const name = `site_bench_${type}_${process.pid}`;
  await ch.assertQueue(name, { durable: true, arguments: { 'x-queue-type': type } });
  const body = Buffer.alloc(1024, 'x');
  let t = performance.now();
  for (let sent = 0; sent < count; ) {
    const end = Math.min(count, sent + BATCH);
    for (; sent < end; ) {
      ch.sendToQueue(name, body, { persistent: true });
      sent++;
    }
    await ch.waitForConfirms();
  }
  const publishSeconds = (performance.now() - t) / 1000;
  t = performance.now();
  await ch.prefetch(BATCH);
  await new Promise<void>((resolve) => {
    let got = 0;
    void ch.consume(name, (m) => {
      if (!m) return;
      ch.ack(m);
      if (++got === count) resolve();
    });
  });
  const consumeSeconds = (performance.now() - t) / 1000;
  await ch.deleteQueue(name);
  await conn.close();
  process.stdout.write(
    `${JSON.stringify({ type, count, publishPerSecond: count / publishSeconds, consumePerSecond: count / consumeSeconds })}\n`,
  );
}

try {
  if (cmd === 'sequence') await sequence(String(a).split(','), Number(b), String(c));
  else if (cmd === 'states') await states(String(a), Number(b), String(c));
  else if (cmd === 'raw') await raw(String(a).split(','), String(b));
  else if (cmd === 'queue') await queue(String(a).split(','), String(b), Number(c));
  else if (cmd === 'publish') await publish(String(a).split(','), Number(b), c ?? 'site', Number(d ?? Number.POSITIVE_INFINITY));
  else if (cmd === 'count') await count(String(a), String(b), c === 'events');
  else throw new Error('usage: site-tool publish URLS COUNT [RUN] | count STORE_URL [RUN]');
} catch (e) {
  process.stderr.write(`site-tool: ${(e as Error).message}\n`);
  process.exit(1);
}
