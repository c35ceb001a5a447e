/*
 * Which engines a fused appliance runs together in one process: both the
 * installer (one supervisord program per group) and the runtime
 * (`engine-launcher -e fused -n a,b,c`) take the groups from here.
 *
 * A group follows the chain: an engine joins the one before it when that
 * one sends everything to it alone (next = it), and it is not an entry of
 * its own (no exchange). An engine two others send to alone (che, after
 * event_filter and collectdgw) joins the first of them in the file; the
 * other keeps publishing to its queue, which the group consumes too.
 */

export interface ChainLink {
  name: string;
  next: readonly string[];
  exchange?: string | undefined;
  /** Only engines that process events are fused (a beat-only one has nothing to hand over). */
  processesEvents: boolean;
}

export function fusedGroups(engines: readonly ChainLink[]): string[][] {
  const byName = new Map(engines.map((e) => [e.name, e]));
  const joined = new Map<string, string>(); // engine -> the one it follows in its group
  for (const e of engines) {
    const to = e.next.length === 1 ? byName.get(e.next[0]!) : undefined;
    if (!to || !e.processesEvents || !to.processesEvents || to.exchange || joined.has(to.name)) continue;
    // A loop (a -> b -> a) stays separate engines: the broker, not a call stack, carries it.
    let head = e.name;
    while (joined.has(head)) head = joined.get(head)!;
    if (head === to.name) continue;
    joined.set(to.name, e.name);
  }
  const followers = new Map([...joined].map(([after, before]) => [before, after]));
  const groups: string[][] = [];
  for (const e of engines) {
    if (joined.has(e.name)) continue; // not a head
    const group = [e.name];
    for (let n = followers.get(e.name); n !== undefined && !group.includes(n); n = followers.get(n)) group.push(n);
    groups.push(group);
  }
  return groups;
}

/** The supervisord program (and systemd instance stem) of a group: its first engine's, marked when it holds several. */
export const groupProgram = (group: readonly string[]) => (group.length > 1 ? `engine-fused-${group[0]}` : `engine-${group[0]}`);
