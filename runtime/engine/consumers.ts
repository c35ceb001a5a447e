import type { ConsumeMessage } from 'amqplib';
import type { EventChannel, JobChannel } from './broker-port.js';

/*
 * One queue's consumer, started or cancelled to match what the engine
 * wants now (consuming unless stopping or held by a fault). Cancelling drops
 * the queue's consumer count to 0, which is how readiness checks see a
 * paused engine. A consumer belongs to one channel: after a reconnect the
 * old one is forgotten, the broker already let it go.
 */
export class ConsumerSwitch {
  private current: { ch: EventChannel | JobChannel; tag: string } | undefined;

  constructor(private readonly queue: string) {}

  consumingOn(ch: object | undefined): boolean {
    return !!ch && this.current?.ch === ch;
  }

  async set(ch: EventChannel | JobChannel, want: boolean, onMessage: (msg: ConsumeMessage) => void): Promise<void> {
    const mine = this.current?.ch === ch ? this.current : undefined;
    if (want && !mine) {
      const ok = await ch.consume(this.queue, (msg) => {
        if (msg) onMessage(msg);
      });
      this.current = { ch, tag: ok.consumerTag };
    } else if (!want && mine) {
      await ch.cancel(mine.tag);
      this.current = undefined;
    } else if (!mine) {
      this.current = undefined;
    }
  }
}
