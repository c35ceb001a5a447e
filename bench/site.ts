import { readFile } from 'node:fs/promises';
import { readBrokerConfig } from '../runtime/config/files.js';
import { waitFor } from '../test/helpers/index.js';
import { createSite, type Site } from '../test/helpers/site.js';
import { writeSection } from './report.js';

/*
 * Events per second through a site of several hosts (network namespaces,
 * test/helpers/site.ts): 1 and 2 engines hosts, on 1 broker node (classic
 * queues) and on 3 (a cluster with quorum queues), all in one run; and the
 * broker alone, classic against quorum queues, to see what replication
 * costs per message. Each host is installed by build-install with its
 * roles; the chain runs fused; the store is the store host's PostgreSQL.
 * Every host shares this machine's 2 cores: the figures compare layouts
 * with each other, they are not what separate machines would do.
 */

const EVENTS = Number(process.env.BENCH_SITE_EVENTS ?? 10_000);
const QUEUE_MESSAGES = 20_000;

interface Row {
  brokers: number;
  engineHosts: number;
  perSecond: number;
  duplicates: number;
  /** CPU seconds per 1,000 events, by role (broker, store, engines), over the run. */
  cpu: Record<string, number>;
}

const TICKS = 100; // USER_HZ on Linux

/** CPU seconds used so far by the processes of a host's namespace (and their reaped children). */
async function cpuSeconds(site: Site, host: string): Promise<number> {
  let ticks = 0;
  for (const pid of await site.net.pids(host)) {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    // Fields after the command name (which may hold spaces): utime stime cutime cstime are 14..17.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += [11, 12, 13, 14].reduce((n, i) => n + Number(f[i] ?? 0), 0);
  }
  return ticks / TICKS;
}

async function cpuByRole(site: Site): Promise<Record<string, number>> {
  const out: Record<string, number> = { broker: 0, store: 0, engines: 0 };
  for (const h of Object.keys(site.net.hosts)) {
    const role = h.startsWith('b') ? 'broker' : h.startsWith('e') ? 'engines' : h === 'store' ? 'store' : undefined;
    if (role) out[role]! += await cpuSeconds(site, h);
  }
  return out;
}

/** EVENTS events in as fast as the publisher goes; the time until every alarm is in the store. */
async function throughput(site: Site, tag: string): Promise<Omit<Row, 'brokers' | 'engineHosts'>> {
  const broker = await readBrokerConfig(site.prefixOf('e1'));
  const run = `${tag}${Date.now()}`;
  const before = await cpuByRole(site);
  const t = performance.now();
  const publisher = site.spawnTool('store', 'publish', broker.urls.join(','), String(EVENTS), run);
  await waitFor(`${EVENTS} alarms (${tag})`, async () => ((await site.counted(run)).alarms >= EVENTS ? true : undefined), 900_000, 500);
  const seconds = (performance.now() - t) / 1000;
  const done = await site.counted(run, true);
  const p = await publisher;
  if (p.exitCode !== 0) throw new Error(`publisher: ${p.all}`);
  const after = await cpuByRole(site);
  // The store host also runs the publisher and the counting: its figure includes them.
  const cpu = Object.fromEntries(Object.keys(after).map((k) => [k, ((after[k]! - before[k]!) * 1000) / EVENTS]));
  return { perSecond: EVENTS / seconds, duplicates: done.events - EVENTS, cpu };
}

async function queueCost(site: Site): Promise<Array<Record<string, number | string>>> {
  const broker = await readBrokerConfig(site.prefixOf('e1'));
  const out = [];
  for (const type of ['classic', 'quorum']) {
    const r = await site.tool('store', 'queue', broker.urls.join(','), type, String(QUEUE_MESSAGES));
    if (r.exitCode !== 0) throw new Error(`queue ${type}: ${r.all}`);
    out.push(JSON.parse(String(r.stdout).trim().split('\n').at(-1)!));
  }
  return out;
}

export async function benchSite(): Promise<void> {
  const rows: Row[] = [];
  const queues: Array<Record<string, number | string>> = [];
  for (const brokers of [1, 3]) {
    const site = await createSite({ prefix: `cpsb${brokers}`, subnet: `10.231.${30 + brokers}`, brokers, engineHosts: 2, web: false });
    try {
      const names = Array.from({ length: brokers }, (_, i) => `b${i + 1}`);
      await Promise.all(names.map((h) => site.install(h)));
      if (brokers > 1)
        await waitFor('the cluster', async () => ((await site.runningNodes('b1')).length === brokers ? true : undefined), 120_000, 1000);
      await site.install('store');
      await site.install('e1', ['pipeline.engine_hosts=1']);
      const one = await throughput(site, `b${brokers}e1`);
      rows.push({ brokers, engineHosts: 1, ...one });
      console.log(`${brokers} broker node(s), 1 engines host: ${one.perSecond.toFixed(0)} events/s`);
      await site.install('e1');
      await site.install('e2');
      const two = await throughput(site, `b${brokers}e2`);
      rows.push({ brokers, engineHosts: 2, ...two });
      console.log(`${brokers} broker node(s), 2 engines hosts: ${two.perSecond.toFixed(0)} events/s`);
      if (brokers === 3) queues.push(...(await queueCost(site)).map((q) => ({ ...q, nodes: brokers })));
      else queues.push({ ...(await queueCost(site))[0]!, nodes: brokers });
    } finally {
      await site.teardown();
    }
  }
  const md = [
    '## Several hosts: engines hosts and broker nodes',
    '',
    `\`npm run bench site\`: a site in network namespaces of this one machine (its 2 cores shared by every host), each host installed by build-install with its roles; ${EVENTS} events published at once from the store host, timed until every alarm is in the store host's PostgreSQL. The chain runs fused; one broker node means classic queues, three a cluster with quorum queues.`,
    '',
    'CPU seconds per 1,000 events, by the hosts of each role (the store host also runs the publisher and the counting), show where the shared cores went.',
    '',
    '| broker nodes | engines hosts | events/s | events counted twice | CPU s/1000 ev: brokers | store | engines |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map(
      (r) =>
        `| ${r.brokers} | ${r.engineHosts} | ${r.perSecond.toFixed(0)} | ${r.duplicates} | ${r.cpu.broker!.toFixed(2)} | ${r.cpu.store!.toFixed(2)} | ${r.cpu.engines!.toFixed(2)} |`,
    ),
    '',
    `The broker alone, same run: ${QUEUE_MESSAGES} messages of 1 KiB published with confirms into one queue, then consumed and acked.`,
    '',
    '| broker nodes | queue type | published/s | consumed/s |',
    '| ---: | --- | ---: | ---: |',
    ...queues.map(
      (q) => `| ${q.nodes} | ${q.type} | ${Number(q.publishPerSecond).toFixed(0)} | ${Number(q.consumePerSecond).toFixed(0)} |`,
    ),
  ].join('\n');
  console.log(md);
  await writeSection('site', md);
}
