/*
 * Work started and not yet settled (confirms on their way, jobs running):
 * a graceful stop waits for it, bounded.
 */
export class InFlight {
  private readonly pending = new Set<Promise<unknown>>();

  get size(): number {
    return this.pending.size;
  }

  track<T>(p: Promise<T>): Promise<T> {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p)).catch(() => undefined);
    return p;
  }

  /** Until nothing is pending, including what settling work started. */
  async drained(): Promise<void> {
    while (this.pending.size) await Promise.allSettled([...this.pending]);
  }
}
