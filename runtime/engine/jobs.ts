import type { ConsumeMessage } from 'amqplib';
import type { Logger } from '../log.js';
import type { DispatcherTask, EngineHandle } from '../tasks/types.js';
import type { EngineConnection, JobChannel } from './broker-port.js';
import type { ChannelLife } from './channel-life.js';
import { ConsumerSwitch } from './consumers.js';
import { classify } from './faults.js';
import type { InFlight } from './in-flight.js';

/*
 * The consumer of Dispatcher_<name>: the jobs a beat sends are done once
 * per engine type, by whichever process is free (its own channel, prefetch
 * 1). A failed job is dropped: the beat that sent it sends the next one.
 */
export class JobConsumer {
  private ch: JobChannel | undefined;
  private readonly consumer: ConsumerSwitch;

  constructor(
    queue: string,
    private readonly task: DispatcherTask,
    private readonly handle: EngineHandle,
    private readonly logger: Logger,
    private readonly life: ChannelLife,
    private readonly inFlight: InFlight,
    private readonly done: () => void,
  ) {
    this.consumer = new ConsumerSwitch(queue);
  }

  async open(conn: EngineConnection): Promise<void> {
    const ch = this.life.watch(await conn.createChannel(), 'dispatcher channel');
    await ch.prefetch(1);
    await this.consumer.set(ch, true, (msg) => void this.run(ch, msg));
    this.ch = ch;
  }

  /** Takes no more jobs; those running finish. */
  async cancel(): Promise<void> {
    if (this.ch) await this.consumer.set(this.ch, false, () => undefined).catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.ch?.close().catch(() => undefined);
  }

  private run(ch: JobChannel, msg: ConsumeMessage): Promise<void> {
    return this.inFlight.track(
      (async () => {
        try {
          await this.task(this.handle, JSON.parse(msg.content.toString('utf8')), { logger: this.logger });
          this.done();
        } catch (e) {
          this.logger.error({ err: (e as Error).message, fault: classify(e).kind }, 'consume_dispatcher failed; job dropped');
        }
        this.life.ack(ch, msg);
      })(),
    );
  }
}
