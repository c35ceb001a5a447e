import { checkDuration } from '../../durations.js';
import type { OperationParameters } from '../../pbehavior/store.js';
import type { Body, Errors } from './crud.js';

/*
 * The parameters of an operation on an alarm, as a scenario's action and an
 * idle rule's operation both take them (capensis/canopsis release-22.10,
 * lib/api/scenario and lib/api/idlerule validators): changestate a state,
 * assocticket a ticket, snooze a duration, pbehavior a name, a type, a
 * reason and either tstart/tstop or start_on_trigger with a duration.
 * Errors go under `at` (actions.0.parameters, operation.parameters).
 */
export function operationParameters(type: string, p: Body, at: string, errors: Errors): OperationParameters {
  const params: OperationParameters = {};
  if (typeof p.output === 'string') params.output = p.output;
  const duration = () => checkDuration(p.duration, `${at}.duration`, errors, 'Duration is missing.');
  switch (type) {
    case 'changestate':
      if (!Number.isInteger(p.state) || (p.state as number) < 0 || (p.state as number) > 3)
        errors[`${at}.state`] = 'State must be one of [0 1 2 3].';
      else params.state = p.state as number;
      break;
    case 'assocticket':
      if (typeof p.ticket !== 'string' || !p.ticket) errors[`${at}.ticket`] = 'Ticket is missing.';
      else params.ticket = p.ticket;
      break;
    case 'snooze': {
      const d = duration();
      if (d) params.duration = d;
      break;
    }
    case 'pbehavior': {
      // engine-pbehavior rpc_server_message_processor.go: tstart with tstop, or start_on_trigger with a duration.
      for (const f of ['name', 'reason', 'type'] as const)
        if (typeof p[f] !== 'string' || !p[f]) errors[`${at}.${f}`] = `${f[0]!.toUpperCase()}${f.slice(1)} is missing.`;
        else params[f] = p[f] as string;
      if (typeof p.rrule === 'string' && p.rrule) params.rrule = p.rrule;
      if (p.start_on_trigger === true) {
        const d = duration();
        if (d) Object.assign(params, { start_on_trigger: true, duration: d });
      } else if (Number.isSafeInteger(p.tstart) && Number.isSafeInteger(p.tstop) && (p.tstop as number) > (p.tstart as number)) {
        Object.assign(params, { tstart: p.tstart, tstop: p.tstop });
      } else errors[`${at}.tstart`] = 'Tstart with Tstop, or StartOnTrigger with Duration, is required.';
      break;
    }
  }
  return params;
}
