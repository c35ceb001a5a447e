/** What the alarm list shows of states, statuses and times (Canopsis' names and colours). */
export const STATES = ['ok', 'minor', 'major', 'critical'] as const;
export const STATUSES = ['off', 'ongoing', 'stealthy', 'flapping', 'cancelled', 'noevents'] as const;

export const stateName = (v: number) => STATES[v] ?? String(v);
export const statusName = (v: number) => STATUSES[v] ?? String(v);

/** "3 min", "2 h 5 min", "4 d" since a unix time. */
export function age(since: number, now = Date.now() / 1000): string {
  const s = Math.max(0, Math.floor(now - since));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d`;
}

export const when = (t: number) => new Date(t * 1000).toISOString().replace('T', ' ').slice(0, 19);
