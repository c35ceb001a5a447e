/*
 * Event dispatchers after Senlin: one method, dump(level, action, info). An
 * engine reports what it did (alarm opened, acked, resolved...) and what
 * went wrong; each enabled dispatcher records or forwards it.
 */

export type DumpLevel = 'debug' | 'info' | 'warning' | 'error' | 'critical';

export interface DumpInfo {
  timestamp: number;
  /** What stage of the action this is (e.g. start, end, failed). */
  phase: string;
  reason: string;
  extra: Record<string, unknown>;
}

export interface Dispatcher {
  readonly name: string;
  dump(level: DumpLevel, action: string, info: DumpInfo): Promise<void> | void;
  close?(): Promise<void>;
}

/** What a dispatcher plugin module exports: a factory by name. */
export interface DispatcherPlugin {
  name: string;
  create(ctx: DispatcherContext): Dispatcher | Promise<Dispatcher>;
}

export interface DispatcherContext {
  engine: string;
  worker: number;
  prefix: string;
  store: () => Promise<import('../store/types.js').Store>;
  publish: (exchange: string, routingKey: string, body: Buffer) => Promise<void>;
  alertsExchange: string;
}
