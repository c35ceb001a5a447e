import { connectAny } from '../../runtime/amqp/connection.js';
import { deadQueue, engineQueue, queueCounts } from '../../runtime/amqp/topology.js';
import { readEngines } from '../../runtime/config/engines.js';
import { readBrokerConfig } from '../../runtime/config/files.js';

/*
 * What an operator should see beside "running" for the engines: events
 * dead-lettered per engine (bounded by the retention policy, so a growing
 * count is news) and events waiting.
 */

export async function engineBacklog(prefix: string): Promise<string | undefined> {
  const b = await readBrokerConfig(prefix);
  const { engines } = await readEngines(prefix);
  const conn = await connectAny(b.urls, b.wheres).catch(() => undefined);
  if (!conn) return undefined;
  try {
    const dead: string[] = [];
    let waiting = 0;
    for (const name of engines.keys()) {
      const q = await queueCounts(conn, engineQueue(name));
      const d = await queueCounts(conn, deadQueue(engineQueue(name)));
      waiting += q.messages;
      if (d.messages) dead.push(`${name} ${d.messages}`);
    }
    return `${waiting} waiting, dead letters: ${dead.length ? dead.join(', ') : 'none'}`;
  } finally {
    await conn.close().catch(() => undefined);
  }
}
