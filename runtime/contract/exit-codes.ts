/*
 * Exit codes of the appliance's commands. The installer's CLI sets them
 * from its typed errors (installer/errors.ts); an update reads those of the
 * release's own installer, and `service`/`hypcontrol` follow LSB for status.
 */

export const EXIT = {
  ok: 0,
  failed: 1,
  /** A bad setting, a bad argument or an unusable key file. */
  usage: 2,
  preflight: 3,
  validation: 4,
  locked: 5,
  apply: 6,
  start: 7,
  bundle: 8,
  update: 9,
  /** LSB `status`: the service is not running. */
  notRunning: 3,
} as const;

/** A release's installer refused before writing anything: settings, preflight, validation. */
export const refusedBeforeWriting = (code: number | undefined): boolean =>
  code === EXIT.usage || code === EXIT.preflight || code === EXIT.validation;
