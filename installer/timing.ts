import { z } from 'zod';

/*
 * Where a run spends its time, step by step, for `--timings` and the --json
 * answer: an operator whose install or update is slow sees which step (and
 * which part of it: a validator, the release copy, a restart) to look at.
 */

export interface Timing {
  step: string;
  ms: number;
  /** What the step is made of, when it says (parts may overlap: validators run together). */
  parts?: Timing[];
}

export const timingSchema: z.ZodType<Timing> = z.lazy(() =>
  z.object({ step: z.string(), ms: z.number(), parts: z.array(timingSchema).optional() }),
);

/** Runs `fn`, adding how long it took to `into` (also when it throws: the time until the failure is news too). */
export async function timed<T>(into: Timing[], step: string, fn: (parts: Timing[]) => Promise<T>): Promise<T> {
  const parts: Timing[] = [];
  const start = performance.now();
  try {
    return await fn(parts);
  } finally {
    into.push({ step, ms: performance.now() - start, ...(parts.length ? { parts } : {}) });
  }
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2).padStart(6)} s`;

/** One line per step, parts indented below it, and the total of the top level. */
export function timingLines(timings: Timing[], total = timings.reduce((n, t) => n + t.ms, 0)): string[] {
  const walk = (list: Timing[], depth: number): string[] =>
    list.flatMap((t) => [`${seconds(t.ms)}  ${'  '.repeat(depth)}${t.step}`, ...walk(t.parts ?? [], depth + 1)]);
  return ['Time per step:', ...walk(timings, 0).map((l) => `  ${l}`), `  ${seconds(total)}  total`];
}
