import { clientAddress } from '../../runtime/config/files.js';
import type { Role, Settings } from './schema.js';

/*
 * What a host runs follows from its roles ([canopsis] roles) and the few
 * settings that say where the shared parts are. Everything that differs per
 * role (services, files, ports, preflight) asks these functions, so a rule
 * is written once.
 */

export const hasRole = (s: Settings, role: Role): boolean => (s.canopsis.roles as string[]).includes(role);

/** This host runs a RabbitMQ node: the broker role, unless the operator points at a broker of their own (mode = external). */
export const runsBroker = (s: Settings): boolean => hasRole(s, 'broker') && s.rabbitmq.mode === 'local';

/** This host runs the store's PostgreSQL. */
export const runsPostgresql = (s: Settings): boolean =>
  hasRole(s, 'store') && s.store.backend === 'postgresql' && s.store.postgresql_mode === 'local';

/** This host runs the store's mongod. */
export const runsMongodb = (s: Settings): boolean =>
  hasRole(s, 'store') && s.store.backend === 'mongodb' && s.store.mongodb_mode === 'local';

/** The host part of a node name (canopsis@10.0.0.11 -> 10.0.0.11). */
export const nodeHost = (node: string): string => node.slice(node.indexOf('@') + 1);

/**
 * The broker addresses clients try, in order: every node of the cluster,
 * this host's own first when it runs one; without a cluster, rabbitmq.host.
 */
export function brokerHosts(s: Settings): string[] {
  const nodes = s.rabbitmq.cluster_nodes;
  if (nodes.length === 0) return [clientAddress(s.rabbitmq.host)];
  const own = runsBroker(s) ? nodes.filter((n) => n === s.rabbitmq.node_name) : [];
  return [...own, ...nodes.filter((n) => !own.includes(n))].map(nodeHost);
}

/** Quorum queues take a majority of three nodes or more; with fewer, a node's loss would stop them. */
export const quorumQueues = (s: Settings): boolean => s.rabbitmq.cluster_nodes.length >= 3;

/** Erlang needs long names as soon as one node's host part is an address or a dotted name, on every node alike. */
export const longNodeNames = (s: Settings): boolean =>
  [s.rabbitmq.node_name, ...s.rabbitmq.cluster_nodes].some((n) => nodeHost(n).includes('.'));

/** The store is on this host's disk: the engines and the webserver must be here to use it. */
export const storeIsLocalFile = (s: Settings): boolean => s.store.backend === 'embedded';

/** Whether this host opens the store at all. */
export const usesStore = (s: Settings): boolean => hasRole(s, 'engines') || hasRole(s, 'webserver') || hasRole(s, 'store');
