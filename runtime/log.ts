import pino, { type Logger } from 'pino';

/*
 * Structured logs (one JSON object per line) on stdout, which supervisord or
 * journald collect. Canopsis level names map onto pino's.
 */

export const LEVELS = { debug: 'debug', info: 'info', warning: 'warn', error: 'error', critical: 'fatal' } as const;
export type LevelName = keyof typeof LEVELS;

export function isLevel(v: string): v is LevelName {
  return v in LEVELS;
}

export function createLogger(level: LevelName, bindings: Record<string, unknown> = {}): Logger {
  return pino({ level: LEVELS[level], base: { pid: process.pid, ...bindings }, timestamp: pino.stdTimeFunctions.isoTime });
}

export type { Logger };
