/** Canopsis' DurationWithUnit units (lib/canopsis/datetime/duration.go), in seconds; months and years as 30 and 365 days. */
export const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 7 * 86400, M: 30 * 86400, y: 365 * 86400 };

export interface DurationWithUnit {
  value: number;
  unit: string;
}

/** Seconds of a duration (NaN for a unit the API would have refused). */
export const durationSeconds = (d: DurationWithUnit) => d.value * (DURATION_UNITS[d.unit] ?? Number.NaN);

/**
 * A DurationWithUnit from a request body, with Canopsis' messages under
 * `key`, `key.unit` and `key.value` when it is missing or wrong.
 */
export function checkDuration(v: unknown, key: string, errors: Record<string, string>, missing: string): DurationWithUnit | undefined {
  const d = v as { value?: unknown; unit?: unknown } | undefined;
  if (!d || typeof d !== 'object') errors[key] = missing;
  else if (typeof d.unit !== 'string' || !(d.unit in DURATION_UNITS))
    errors[`${key}.unit`] = `Unit must be one of [${Object.keys(DURATION_UNITS).join(' ')}].`;
  else if (!Number.isSafeInteger(d.value) || (d.value as number) <= 0) errors[`${key}.value`] = 'Value should be greater than 0.';
  else return { value: d.value as number, unit: d.unit };
  return undefined;
}
