import type { EventChannel } from './broker-port.js';
import type { ChannelLife } from './channel-life.js';
import { backoff, RETRY_POLICY } from './faults.js';
import type { FaultPause } from './pause.js';

/*
 * Publishing with publisher confirms. A refusal (nack) is a broker fault:
 * retried with backoff while the engine is held. A channel that refuses
 * every publish in a row is given up with its connection: on a cluster, a
 * channel opened while a quorum queue's leader was down is refused for
 * as long as it lives, where a new one is not (measured here, issue 19).
 * amqplib buffers when the socket is full; the engine then waits for
 * 'drain' before taking the next event.
 */

/** Refusals in a row on one channel before its connection is made again. */
export const NACKS_BEFORE_RECONNECT = 5;

export class ConfirmedPublisher {
  private drainWait: Promise<unknown> | undefined;
  private readonly refusals = new WeakMap<object, number>();

  constructor(
    private readonly life: ChannelLife,
    private readonly pause: FaultPause,
    private readonly onRetry: () => void,
    /** Drops the connection, which the link makes again (on the next node of a cluster). */
    private readonly reconnect: (why: string) => void = () => undefined,
  ) {}

  /** One publish, resolved on the broker's confirm, rejected on its nack. */
  publish(ch: EventChannel, exchange: string, key: string, body: Buffer, headers?: Record<string, unknown>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const ok = ch.publish(exchange, key, body, { persistent: true, contentType: 'application/json', headers: headers ?? {} }, (err) =>
        err ? reject(err) : resolve(),
      );
      if (!ok) this.drainWait ??= drained(ch).finally(() => (this.drainWait = undefined));
    });
  }

  /**
   * Publishes until the broker confirms. Resolves false when the channel
   * is gone or a stop came first: the input then stays unacked. A retried
   * publish may land after those of later events.
   */
  async confirmed(ch: EventChannel, exchange: string, key: string, body: Buffer, headers?: Record<string, unknown>): Promise<boolean> {
    const hold = {};
    try {
      for (let n = 0; ; n++) {
        try {
          await this.publish(ch, exchange, key, body, headers);
          this.refusals.delete(ch);
          if (n > 0) {
            this.pause.release(hold);
            this.pause.answered();
          }
          return true;
        } catch (e) {
          if (this.life.isLost(ch) || this.life.stopping) return false;
          const refused = (this.refusals.get(ch) ?? 0) + 1;
          this.refusals.set(ch, refused);
          if (refused === NACKS_BEFORE_RECONNECT) {
            this.reconnect(`${refused} publishes in a row refused on one channel: ${(e as Error).message}`);
            // The input stays unacked: the channel goes with the connection, and the broker delivers it again.
            return false;
          }
          this.onRetry();
          this.pause.hold(hold, `the broker refused a publish to ${key || exchange}: ${(e as Error).message}`);
          if (!(await this.life.sleep(backoff(RETRY_POLICY.transient, n), ch))) return false;
        }
      }
    } finally {
      this.pause.release(hold);
    }
  }

  /** Resolves when the socket takes more (at once unless a publish found it full). */
  async backPressure(): Promise<void> {
    if (this.drainWait) await this.drainWait;
  }
}

/** The socket took what was buffered, or the channel is gone (its messages are back in their queues). */
function drained(ch: EventChannel): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      ch.removeListener('drain', done);
      ch.removeListener('close', done);
      resolve();
    };
    ch.once('drain', done);
    ch.once('close', done);
  });
}
