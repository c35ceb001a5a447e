#!/usr/bin/env node
import type amqp from 'amqplib';
import { Command } from 'commander';
import { connectAny } from '../amqp/connection.js';
import { peek, type ReplayFilter, reasonsOf, replayLetters } from '../amqp/dead-letters.js';
import { deadQueue, durableQueue, engineQueue } from '../amqp/topology.js';
import { readEngines } from '../config/engines.js';
import { type BrokerConfig, prefixFrom, readBrokerConfig } from '../config/files.js';
import { commanderExit } from './args.js';

/*
 * dead-letters list | show | replay: what the engines refused, why, and a way
 * back into the pipeline once the cause is fixed.
 */

interface Common {
  prefix?: string;
  limit: string;
}

async function withChannel<T>(
  prefix: string | undefined,
  fn: (ch: amqp.ConfirmChannel, engines: string[], broker: BrokerConfig) => Promise<T>,
): Promise<T> {
  const p = prefixFrom(process.env, prefix);
  const broker = await readBrokerConfig(p);
  const { engines } = await readEngines(p);
  const conn = await connectAny(broker.urls, broker.wheres);
  try {
    const ch = await conn.createConfirmChannel();
    try {
      return await fn(ch, [...engines.keys()], broker);
    } finally {
      // Unsettled messages go back to their queue, in order.
      await ch.close().catch(() => undefined);
    }
  } finally {
    await conn.close().catch(() => undefined);
  }
}

const out = (s: string) => process.stdout.write(`${s}\n`);

function program(): Command {
  const cli = new Command('dead-letters')
    .description('List, show and replay the events engines dead-lettered, with their reasons.')
    .exitOverride();
  cli
    .command('list [engine]')
    .description('count dead letters per engine, grouped by reason')
    .option('--prefix <dir>', 'installed tree (default: $CPS_PREFIX)')
    .option('--limit <n>', 'read at most this many per engine', '10000')
    .option('--json', 'JSON output')
    .action(async (engine: string | undefined, o: Common & { json?: boolean }) => {
      await withChannel(o.prefix, async (ch, engines, broker) => {
        const result = [];
        for (const name of engine ? [engine] : engines) {
          const q = engineQueue(name);
          const total = (await ch.assertQueue(deadQueue(q), durableQueue(broker.queueType))).messageCount;
          const letters = total ? await peek(ch, q, Number(o.limit)) : [];
          result.push({ engine: name, queue: deadQueue(q), total, reasons: reasonsOf(letters) });
        }
        if (o.json) out(JSON.stringify(result));
        else
          for (const r of result) {
            out(`${r.engine}: ${r.total} dead letter${r.total === 1 ? '' : 's'} in ${r.queue}`);
            for (const x of r.reasons) out(`  ${String(x.count).padStart(6)}  ${x.reason}`);
          }
      });
    });
  cli
    .command('show <engine> <index>')
    .description('print one dead letter (1 = the oldest): reason, origin and body')
    .option('--prefix <dir>', 'installed tree (default: $CPS_PREFIX)')
    .action(async (engine: string, index: string, o: { prefix?: string }) => {
      await withChannel(o.prefix, async (ch) => {
        const n = Number(index);
        const letters = await peek(ch, engineQueue(engine), n);
        const l = letters[n - 1];
        if (!l) throw new Error(`${engine}: no dead letter #${index} (${letters.length} there)`);
        out(`reason:      ${l.reason}`);
        out(`engine:      ${l.engine || engine}`);
        out(`dead at:     ${l.deadAt}`);
        out(`queue:       ${l.queue}`);
        out(`routing key: ${l.routingKey}`);
        out(`body (${l.body.length} bytes):`);
        out(l.body.toString('utf8').slice(0, 64 * 1024));
      });
    });
  cli
    .command('replay <engine>')
    .description("put dead letters back into the engine's queue (all, or those matching the filters)")
    .option('--prefix <dir>', 'installed tree (default: $CPS_PREFIX)')
    .option('--reason <regex>', 'only letters whose reason matches')
    .option('--where <field=value...>', 'only events whose field has this value')
    .option('--limit <n>', 'replay at most this many', '100000')
    .option('--json', 'JSON output')
    .action(async (engine: string, o: Common & { reason?: string; where?: string[]; json?: boolean }) => {
      const filter: ReplayFilter = {
        reason: o.reason ? new RegExp(o.reason) : undefined,
        where: (o.where ?? []).map((w) => {
          const i = w.indexOf('=');
          if (i <= 0) throw new Error(`--where ${w}: expected field=value`);
          return [w.slice(0, i), w.slice(i + 1)] as [string, string];
        }),
      };
      await withChannel(o.prefix, async (ch) => {
        const { replayed, kept } = await replayLetters(ch, engineQueue(engine), filter, Number(o.limit));
        if (o.json) out(JSON.stringify({ engine, replayed, kept }));
        else out(`${engine}: replayed ${replayed} into ${engineQueue(engine)}; ${kept} left in ${deadQueue(engineQueue(engine))}`);
      });
    });
  return cli;
}

try {
  await program().parseAsync(process.argv.slice(2), { from: 'user' });
} catch (e) {
  const exit = commanderExit(e);
  if (exit !== undefined) process.exitCode = exit;
  else {
    process.stderr.write(`dead-letters: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
}
