import type { Store } from '../store/types.js';
import { StoreUnavailable } from '../store/types.js';

/*
 * Group commit for the embedded store: the writes of many events share one
 * SQLite transaction, so that an engine pays one commit per group instead
 * of one per write (each modify was its own BEGIN IMMEDIATE ... COMMIT).
 * Still at-least-once: an event's input is acked only once the group that
 * holds its last write is committed; a group that fails to commit (its
 * transaction lost with a reopened connection, or rolled back by SQLite on
 * a full disk) sends its events back to the broker, and their redelivery
 * is harmless because the chain is idempotent.
 *
 * A group is opened when an event starts and the store is open, and
 * committed when the engine has nothing else waiting, after `maxEvents`
 * events, or `maxMs` after it opened, whichever comes first. A commit
 * always falls between two store operations (they are synchronous), so
 * an event whose writes straddle two groups waits for the second; writes
 * made while no group is open (a beat) commit on their own. A beat's or a
 * job's write that lands in a group that then fails to commit is lost
 * with it: the next beat computes it again.
 */

/** What a group needs of the store's connection (the embedded store has it; MongoDB does not). */
interface Transactional {
  readonly generation: number;
  connection(): { inTransaction: boolean; exec(sql: string): unknown };
  run<R>(op: () => R): R;
}

const transactional = (s: Store): s is Store & Transactional =>
  typeof (s as Partial<Transactional>).connection === 'function' && typeof (s as Partial<Transactional>).run === 'function';

interface Group {
  generation: number;
  events: number;
  done: Promise<void>;
  resolve: () => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class GroupCommit {
  private open: Group | undefined;

  constructor(
    private readonly store: Store & Transactional,
    private readonly maxEvents = 500,
    private readonly maxMs = 25,
  ) {}

  /** An event starts: from now its writes go into the open group, or a new one. */
  enter(): void {
    if (this.open) return;
    const generation = this.store.run(() => {
      const db = this.store.connection();
      // Someone else's transaction (a modify in progress cannot be: they are synchronous); leave it be.
      if (db.inTransaction) return undefined;
      db.exec('BEGIN IMMEDIATE');
      return this.store.generation;
    });
    if (generation === undefined) return;
    let resolve!: () => void;
    let reject!: (e: Error) => void;
    const done = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    done.catch(() => undefined);
    this.open = { generation, events: 0, done, resolve, reject, timer: setTimeout(() => this.commit(), this.maxMs) };
  }

  /**
   * An event's writes are all made: resolves once they are committed.
   * `idle` says nothing else waits, so the group commits now.
   */
  leave(idle: boolean): Promise<void> {
    const g = this.open;
    if (!g) return Promise.resolve();
    g.events++;
    if (idle || g.events >= this.maxEvents) this.commit();
    return g.done;
  }

  /** Commits the open group, if any. */
  commit(): void {
    const g = this.open;
    if (!g) return;
    this.open = undefined;
    clearTimeout(g.timer);
    try {
      this.store.run(() => {
        const db = this.store.connection();
        if (this.store.generation !== g.generation || !db.inTransaction)
          throw new StoreUnavailable('the group of writes was rolled back before its commit (connection lost or store full)');
        db.exec('COMMIT');
      });
      g.resolve();
    } catch (e) {
      try {
        const db = this.store.connection();
        if (this.store.generation === g.generation && db.inTransaction) db.exec('ROLLBACK');
      } catch {
        // the connection is gone or broken: its transaction went with it
      }
      g.reject(e as Error);
    }
  }
}

const groups = new WeakMap<Store, GroupCommit>();

/** The process's group commit for a store (one per connection, shared by the engines of a fused process), if it has transactions. */
export function groupCommitOf(store: Store): GroupCommit | undefined {
  if (!transactional(store)) return undefined;
  let g = groups.get(store);
  if (!g) {
    g = new GroupCommit(store);
    groups.set(store, g);
  }
  return g;
}
