import { checkEvent } from '../event/canopsis-event.js';
import { RejectedEvent, type TaskModule } from '../tasks/types.js';

/*
 * The entry engine: every event is validated and normalised here, and what
 * is not a Canopsis event is dead-lettered with the reason (where Canopsis
 * logged and lost it).
 */
export const cleaner: TaskModule = {
  name: 'canopsis.cleaner.process',
  event_processing: (_engine, event) => {
    const r = checkEvent(event);
    if (!r.ok) throw new RejectedEvent(r.reason);
    return r.event;
  },
};
