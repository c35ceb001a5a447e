import { LOCK_HELD_ENV } from './apply/lock.js';

/*
 * Crash points for the kill -9 tests: with CPS_FAILPOINT=<name>, the updater
 * dies by SIGKILL at that point, exactly as if an operator (or the OOM
 * killer) had killed it there. A release installer started by an updater
 * takes its updater down with it, since the two are one run. A real kill
 * from outside cannot be aimed at a point between two writes; this can,
 * and the kill itself is the real one. Unset, it costs one comparison.
 *
 * In-process tests of the update machine set a handler instead: it throws
 * at the point, and the test then runs what the next run would (recovery)
 * on the same tree.
 */

let inProcess: ((name: string) => void) | undefined;

/** For in-process tests only: called at every point instead of the kill. */
export function onFailpoint(handler: ((name: string) => void) | undefined): void {
  inProcess = handler;
}

export function failpoint(name: string): void {
  if (inProcess) {
    inProcess(name);
    return;
  }
  if (process.env.CPS_FAILPOINT !== name) return;
  if (process.env[LOCK_HELD_ENV]) {
    try {
      process.kill(process.ppid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  process.kill(process.pid, 'SIGKILL');
}
