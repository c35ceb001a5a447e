/** Canopsis' DurationWithUnit units (lib/canopsis/datetime/duration.go), in seconds; months and years as 30 and 365 days. */
export const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 7 * 86400, M: 30 * 86400, y: 365 * 86400 };
