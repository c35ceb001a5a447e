import amqp, { type ChannelModel } from 'amqplib';
import type { Logger } from '../log.js';

/*
 * The one owner of a process's broker connection (after
 * amqp-connection-manager): it connects, hands the connection to `setup`
 * (which declares the topology and starts consumers), and when the
 * connection dies it reconnects with capped exponential backoff and runs
 * `setup` again. Nothing else opens or closes connections.
 */

export interface ConnectionOptions {
  url: string;
  /** Shown in logs instead of the URL (no password). */
  where: string;
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

  private async run(): Promise<void> {
    const { initial, max } = this.opts.backoff ?? { initial: 200, max: 5000 };
    let delay = initial;
    while (!this.closing) {
      try {
        const conn = await amqp.connect(`${this.opts.url}?heartbeat=${this.opts.heartbeat ?? 10}`);
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
        this.opts.logger.info({ broker: this.opts.where, connects: this.connects }, 'connected to the broker');
        this.firstConnect.resolve();
        const err = await closed;
        this.conn = undefined;
        if (this.closing) break;
        this.opts.logger.warn({ reason: err?.message ?? 'closed by the broker' }, 'broker connection lost; reconnecting');
      } catch (e) {
        this.conn = undefined;
        if (this.closing) break;
        this.opts.logger.warn({ broker: this.opts.where, err: (e as Error).message, retryInMs: delay }, 'cannot connect to the broker');
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
