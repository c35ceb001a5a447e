/* What one engine process counts; logged at stop, read by its self-stats. */
export interface EngineStats {
  received: number;
  processed: number;
  published: number;
  dropped: number;
  dead: number;
  /** Attempts made again after a fault (transient or not). */
  retries: number;
  /** Episodes of a store or broker fault that paused consumption. */
  faults: number;
  beats: number;
  jobs: number;
  /** Total task time in ms, for seconds per event. */
  busyMs: number;
}

export const noStats = (): EngineStats => ({
  received: 0,
  processed: 0,
  published: 0,
  dropped: 0,
  dead: 0,
  retries: 0,
  faults: 0,
  beats: 0,
  jobs: 0,
  busyMs: 0,
});
