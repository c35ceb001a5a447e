import type { ConsumeMessage } from 'amqplib';
import { partitionQueue } from '../contract/names.js';
import type { Event } from '../tasks/types.js';
import type { EventChannel } from './broker-port.js';
import type { ChannelLife } from './channel-life.js';
import type { InFlight } from './in-flight.js';
import { partitionFor } from './partition.js';
import type { ConfirmedPublisher } from './publisher.js';

/*
 * The partition router of an engine ordered by key with numprocs > 1:
 * worker 0 reads the home queue in arrival order and sends each event to
 * Engine_<name>.<n> by its key, so the events of one key keep their order
 * and each partition has one process. The input is acked once the broker
 * confirmed its copy.
 */
export class PartitionRouter {
  constructor(
    private readonly home: string,
    private readonly key: (e: Event) => string,
    readonly count: number,
    private readonly publisher: ConfirmedPublisher,
    private readonly life: ChannelLife,
    private readonly inFlight: InFlight,
  ) {}

  get queues(): string[] {
    return Array.from({ length: this.count }, (_, i) => partitionQueue(this.home, i));
  }

  route(ch: EventChannel, msg: ConsumeMessage): void {
    const n = partitionFor(msg.content, this.key, this.count);
    this.inFlight.track(
      this.publisher
        .confirmed(ch, '', partitionQueue(this.home, n), msg.content, msg.properties.headers)
        .then((sent) => sent && this.life.ack(ch, msg)),
    );
  }
}
