/*
 * The pause of an engine while the store or the broker does not answer.
 * Whatever waits for them (the event being retried, a publish the broker
 * refused) holds the engine with a token; while any token is held the
 * engine consumes nothing new. A fault episode starts with the first hold
 * (reported once, not at every retry) and ends when something goes through
 * with nothing held any more.
 */

export interface PauseEvents {
  /** The first hold or the last release: the consumers follow `paused`. */
  changed: () => void;
  started: (reason: string) => void;
  ended: (pausedMs: number) => void;
}

export class FaultPause {
  private readonly holds = new Set<object>();
  private episode: { reason: string; since: number } | undefined;

  constructor(
    private readonly on: PauseEvents,
    private readonly now: () => number = Date.now,
  ) {}

  get paused(): boolean {
    return this.holds.size > 0;
  }

  /** While paused: the first error of the episode and since when. */
  get fault(): { reason: string; since: string } | undefined {
    return this.paused && this.episode ? { reason: this.episode.reason, since: new Date(this.episode.since).toISOString() } : undefined;
  }

  hold(token: object, reason: string): void {
    if (this.holds.has(token)) return;
    this.holds.add(token);
    if (this.holds.size > 1) return;
    if (!this.episode) {
      this.episode = { reason, since: this.now() };
      this.on.started(reason);
    }
    this.on.changed();
  }

  release(token: object): void {
    if (!this.holds.delete(token) || this.holds.size > 0) return;
    this.on.changed();
  }

  /** Something went through: if an episode was open and nothing is held any more, it is over. */
  answered(): void {
    if (!this.episode || this.holds.size > 0) return;
    this.on.ended(this.now() - this.episode.since);
    this.episode = undefined;
  }
}
