import amqp, { type ChannelModel } from 'amqplib';
import type { Logger } from '../log.js';

/*
 * The one owner of a process's broker connection (after
 * amqp-connection-manager): it connects, hands the connection to `setup`
 * (which declares the topology and starts consumers), and when the
 * connection dies it reconnects with capped exponential backoff and runs
 * `setup` again. Nothing else opens or closes connections.
 *
 * With the nodes of a cluster, a lost or refused node sends it to the next
 * one at once (as amqp-connection-manager's list of URLs); the backoff
 * starts only once every node refused in a row.
 */

/** How long opening a connection to one node may take. */
export const CONNECT_TIMEOUT_MS = 5000;

export interface ConnectionOptions {
  /** One URL per broker node, tried in this order. */
  urls: string[];
  /** Shown in logs instead of the URLs (no password), one per URL. */
  wheres: string[];
  logger: Logger;
  setup: (conn: ChannelModel) => Promise<void>;
  /** First and maximum delay between attempts, ms. */
  backoff?: { initial: number; max: number };
  heartbeat?: number;
}

export class BrokerConnection {
  private conn: ChannelModel | undefined;
  private closing = false;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private firstConnect: { resolve: () => void; promise: Promise<void> };
  connects = 0;

  constructor(private readonly opts: ConnectionOptions) {
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    this.firstConnect = { resolve, promise };
  }

  /** Starts the connect loop; resolves once the first setup succeeded. */
  start(): Promise<void> {
    this.loop ??= this.run();
    return this.firstConnect.promise;
  }

  get connected(): boolean {
    return this.conn !== undefined;
  }

  /** The node the connection is (or was last) on, for messages. */
  get where(): string {
    return this.opts.wheres[this.node] ?? '';
  }

  private node = 0;

  private async run(): Promise<void> {
    const { initial, max } = this.opts.backoff ?? { initial: 200, max: 5000 };
    const nodes = this.opts.urls.length;
    let delay = initial;
    // Nodes refused in a row since the last good connection: a full round of them waits.
    let refused = 0;
    while (!this.closing) {
      const where = this.where;
      try {
        // A node whose host is gone answers nothing: the next one is tried after seconds, not after TCP's two minutes.
        const conn = await amqp.connect(`${this.opts.urls[this.node]}?heartbeat=${this.opts.heartbeat ?? 10}`, {
          timeout: CONNECT_TIMEOUT_MS,
        });
        const closed = new Promise<Error | undefined>((resolve) => {
          conn.once('close', (err?: Error) => resolve(err));
          conn.on('error', () => undefined); // 'close' follows and carries the reason
        });
        this.conn = conn;
        try {
          await this.opts.setup(conn);
        } catch (e) {
          this.opts.logger.error({ err: (e as Error).message }, 'broker setup failed; reconnecting');
          await conn.close().catch(() => undefined);
          throw e;
        }
        this.connects++;
        delay = initial;
        refused = 0;
        this.opts.logger.info({ broker: where, connects: this.connects }, 'connected to the broker');
        this.firstConnect.resolve();
        const err = await closed;
        this.conn = undefined;
        if (this.closing) break;
        this.opts.logger.warn({ broker: where, reason: err?.message ?? 'closed by the broker' }, 'broker connection lost; reconnecting');
        // The node may be the one that went down: the next one first.
        this.node = (this.node + 1) % nodes;
        if (nodes > 1) continue;
      } catch (e) {
        this.conn = undefined;
        if (this.closing) break;
        this.node = (this.node + 1) % nodes;
        if (++refused < nodes) {
          this.opts.logger.warn(
            { broker: where, err: (e as Error).message, next: this.where },
            'cannot connect to a broker node; trying the next',
          );
          continue;
        }
        refused = 0;
        this.opts.logger.warn({ broker: where, err: (e as Error).message, retryInMs: delay }, 'cannot connect to the broker');
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, delay);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      delay = Math.min(max, delay * 2);
    }
  }

  /** Drops the current connection; the loop connects again, to the next node first. */
  reconnect(why: string): void {
    const conn = this.conn;
    if (!conn || this.closing) return;
    this.opts.logger.warn({ broker: this.where, why }, 'dropping the broker connection to make it again');
    conn.close().catch(() => undefined);
  }

  /** Closes the connection for good; `beforeClose` runs while it is still open (close channels there). */
  async close(beforeClose?: () => Promise<void>): Promise<void> {
    this.closing = true;
    this.wake?.();
    const conn = this.conn;
    if (conn) {
      await beforeClose?.().catch(() => undefined);
      await conn.close().catch(() => undefined);
    }
    this.firstConnect.resolve();
    await this.loop;
  }
}

/**
 * One connection to the first node of `urls` that takes it (one-shot
 * clients: send-event, dead-letters, readiness checks); the last refusal
 * when none does, naming every node tried.
 */
export async function connectAny(urls: string[], wheres: string[]): Promise<ChannelModel> {
  const errors: string[] = [];
  for (const [i, url] of urls.entries()) {
    try {
      return await amqp.connect(url, { timeout: CONNECT_TIMEOUT_MS });
    } catch (e) {
      errors.push(`${wheres[i]}: ${(e as Error).message}`);
    }
  }
  throw new Error(`no broker node answered (${errors.join('; ')})`);
}
