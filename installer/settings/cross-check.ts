import { EXCHANGES } from '../../runtime/contract/names.js';
import type { SettingProblem } from '../errors.js';
import { portsOf } from '../services/index.js';
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

  const ports = portsOf(s);
  for (let i = 0; i < ports.length; i++) {
    for (let j = 0; j < i; j++) {
      if (ports[i]!.port === ports[j]!.port) {
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
