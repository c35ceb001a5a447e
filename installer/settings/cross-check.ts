import { EXCHANGES } from '../../runtime/contract/names.js';
import type { SettingProblem } from '../errors.js';
import { portsOf } from '../services/index.js';
import { hasRole, nodeHost, runsBroker, runsPostgresql, usesStore } from './roles.js';
import type { Settings } from './schema.js';

/*
 * Rules that span keys: the engine chain must be a graph of known engines
 * without cycles and with an entry from canopsis.events, and the services
 * that will listen must not share a port.
 */

export const EVENTS_EXCHANGE = EXCHANGES.events;

export function crossCheck(s: Settings, file: string): SettingProblem[] {
  const problems: SettingProblem[] = [];
  const names = s.engines.map((e) => e.name);

  if (s.engines.length === 0) {
    problems.push({
      file,
      section: 'engine:NAME',
      expected: 'at least one [engine:NAME] section (a new install starts with cleaner, event_filter, che, axe)',
    });
    return problems;
  }

  for (const e of s.engines) {
    for (const n of e.next) {
      if (!names.includes(n)) {
        problems.push({
          file,
          section: `engine:${e.name}`,
          key: 'next',
          found: e.next.join(','),
          expected: `names of configured engines (${names.join(', ')})`,
        });
      }
    }
    if (!e.event_processing && !e.beat_processing) {
      problems.push({
        file,
        section: `engine:${e.name}`,
        key: 'event_processing',
        found: '',
        expected: 'a task for event_processing or beat_processing (an engine with neither does nothing)',
      });
    }
    if (!e.event_processing && e.next.length > 0) {
      problems.push({
        file,
        section: `engine:${e.name}`,
        key: 'next',
        found: e.next.join(','),
        expected: 'nothing: an engine without event_processing consumes no events to pass on',
      });
    }
  }

  const cycle = findCycle(s);
  if (cycle) {
    problems.push({
      file,
      section: `engine:${cycle[0]}`,
      key: 'next',
      found: s.engines.find((e) => e.name === cycle[0])!.next.join(','),
      expected: `a chain without loops (events would circle ${cycle.join(' -> ')} forever)`,
    });
  }

  if (!s.engines.some((e) => e.exchange === EVENTS_EXCHANGE)) {
    problems.push({
      file,
      section: `engine:${names[0]}`,
      key: 'exchange',
      expected: `one engine to take events from the ${EVENTS_EXCHANGE} exchange (exchange = ${EVENTS_EXCHANGE} on the first engine, usually cleaner)`,
    });
  }

  const w = s.webserver;
  if (w.tls && !w.tls_cert !== !w.tls_key) {
    problems.push({
      file,
      section: 'webserver',
      key: w.tls_cert ? 'tls_key' : 'tls_cert',
      found: '',
      expected: 'both tls_cert and tls_key, or neither (a self-signed pair is then generated)',
    });
  }
  const MiB = 2 ** 20;
  if (s.rabbitmq.max_message_size < 2 * MiB || s.rabbitmq.max_message_size > 512 * MiB) {
    problems.push({
      file,
      section: 'rabbitmq',
      key: 'max_message_size',
      found: String(s.rabbitmq.max_message_size),
      expected: "a size between 2MiB (an event is up to 1 MiB, plus headers) and 512MiB (RabbitMQ's own limit)",
    });
  }

  problems.push(...siteChecks(s, file));

  const ports = portsOf(s);
  for (let i = 0; i < ports.length; i++) {
    for (let j = 0; j < i; j++) {
      // One service on several addresses shares its port with itself.
      if (ports[i]!.port === ports[j]!.port && ports[i]!.setting.join('.') !== ports[j]!.setting.join('.')) {
        const [section, key] = ports[i]!.setting;
        problems.push({
          file,
          section,
          key,
          found: String(ports[i]!.port),
          expected: `a port not already used by ${ports[j]!.setting.join('.')}`,
        });
      }
    }
  }
  if (s.pipeline.engine_host >= s.pipeline.engine_hosts)
    problems.push({
      file,
      section: 'pipeline',
      key: 'engine_host',
      found: String(s.pipeline.engine_host),
      expected: `this host's number among the ${s.pipeline.engine_hosts} engines hosts, 0 to ${s.pipeline.engine_hosts - 1}`,
    });
  return problems;
}

function findCycle(s: Settings): string[] | undefined {
  const next = new Map(s.engines.map((e) => [e.name, e.next]));
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string): string[] | undefined => {
    if (state.get(n) === 'done') return undefined;
    if (state.get(n) === 'visiting') return [...stack.slice(stack.indexOf(n)), n];
    state.set(n, 'visiting');
    stack.push(n);
    for (const m of next.get(n) ?? []) {
      const c = visit(m);
      if (c) return c;
    }
    stack.pop();
    state.set(n, 'done');
    return undefined;
  };
  for (const e of s.engines) {
    const c = visit(e.name);
    if (c) return c;
  }
  return undefined;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/** Rules of a site of several hosts: what each role needs of the others' settings. */
function siteChecks(s: Settings, file: string): SettingProblem[] {
  const problems: SettingProblem[] = [];
  const roles = s.canopsis.roles.join(',');
  const nodes = s.rabbitmq.cluster_nodes;
  if (s.store.backend === 'embedded' && usesStore(s) && !(['store', 'engines', 'webserver'] as const).every((r) => hasRole(s, r)))
    problems.push({
      file,
      section: 'store',
      key: 'backend',
      found: 'embedded',
      expected: `a networked store (postgresql or mongodb) for roles ${roles}: the embedded store is a file on one host, which needs the store, engines and webserver roles together`,
    });
  if (nodes.length > 0) {
    if (new Set(nodes).size !== nodes.length)
      problems.push({ file, section: 'rabbitmq', key: 'cluster_nodes', found: nodes.join(','), expected: 'each node once' });
    if (runsBroker(s) && !nodes.includes(s.rabbitmq.node_name))
      problems.push({
        file,
        section: 'rabbitmq',
        key: 'node_name',
        found: s.rabbitmq.node_name,
        expected: `this broker host's own node, one of cluster_nodes (${nodes.join(', ')})`,
      });
    if (runsBroker(s) && LOOPBACK.has(s.rabbitmq.host))
      problems.push({
        file,
        section: 'rabbitmq',
        key: 'host',
        found: s.rabbitmq.host,
        expected: `an address the other hosts reach (this node's, ${nodeHost(s.rabbitmq.node_name)}, or 0.0.0.0): the cluster's clients connect to every node`,
      });
    if (nodes.length === 2)
      problems.push({
        file,
        section: 'rabbitmq',
        key: 'cluster_nodes',
        found: nodes.join(','),
        expected: 'one node, or three or more: two nodes cannot outvote each other, and the loss of either stops the cluster',
      });
  }
  const remoteListen = s.store.postgresql_listen.some((a) => !LOOPBACK.has(a));
  if (runsPostgresql(s) && remoteListen && s.store.postgresql_clients.length === 0)
    problems.push({
      file,
      section: 'store',
      key: 'postgresql_clients',
      found: '',
      expected: `the networks of the engines and webserver hosts (CIDR, such as 10.0.0.0/24): PostgreSQL listens on ${s.store.postgresql_listen.join(',')} and lets only these log in`,
    });
  if (hasRole(s, 'store') && s.store.backend === 'postgresql' && s.store.postgresql_mode === 'local' && !hasRole(s, 'engines'))
    if (s.store.postgresql_listen.every((a) => LOOPBACK.has(a)))
      problems.push({
        file,
        section: 'store',
        key: 'postgresql_listen',
        found: s.store.postgresql_listen.join(','),
        expected: "this host's address as the engines hosts reach it: with no engines role here, the store serves other hosts",
      });
  return problems;
}
