import type { Logger } from '../log.js';

/*
 * Which channels are gone, and the waits that must end when one goes or
 * the engine stops. A closed channel's unacked messages are back in their
 * queue already: whatever was holding one lets go and never acks it.
 */

interface Closable {
  on(event: 'close' | 'error', listener: (e: Error) => void): unknown;
}

export class ChannelLife {
  private readonly lost = new WeakSet<object>();
  private readonly sleepers = new Set<() => void>();
  stopping = false;

  constructor(private readonly logger: Logger) {}

  watch<C extends Closable>(ch: C, what: string): C {
    ch.on('error', (e: Error) => this.logger.warn({ err: e.message }, `${what} error`));
    ch.on('close', () => {
      this.lost.add(ch);
      this.wake();
    });
    return ch;
  }

  isLost(ch: object): boolean {
    return this.lost.has(ch);
  }

  /** Acks unless the channel is gone (the broker redelivers then). */
  ack<M>(ch: { ack(msg: M): void }, msg: M): void {
    if (this.lost.has(ch)) return;
    try {
      ch.ack(msg);
    } catch {
      // closed under us: not acked, redelivered
    }
  }

  /** Waits, unless a stop or the loss of `ch` comes first; true when it is still worth retrying. */
  sleep(ms: number, ch: object): Promise<boolean> {
    const worth = () => !this.stopping && !this.lost.has(ch);
    if (!worth()) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve(worth());
      };
      const timer = setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }

  /** Ends every backoff sleep now (a stop, a lost channel). */
  wake(): void {
    for (const wake of [...this.sleepers]) wake();
  }
}
