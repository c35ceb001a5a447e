/*
 * The beat of an engine (beat_processing every beat_interval). Beats never
 * overlap: the next one is armed only when the current one has ended, so a
 * beat slower than its interval delays the next instead of piling up.
 */

export class BeatScheduler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly intervalMs: number,
    private readonly beat: () => Promise<void>,
    private readonly failed: (e: Error) => void,
  ) {}

  start(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = (async () => {
        try {
          await this.beat();
        } catch (e) {
          this.failed(e as Error);
        }
      })();
      void this.running.finally(() => {
        this.running = undefined;
        this.start();
      });
    }, this.intervalMs);
  }

  /** No new beat starts; resolves once the one running (if any) has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }
}
