import type { InstallState, Step } from './install.js';
import { timed } from './timing.js';

/*
 * Runs the steps in order: a live list on a terminal (listr2), plain lines
 * otherwise, nothing with --json. Each step's time goes into the state's
 * timings. The prefix lock is released whatever happens.
 */

export type Display = 'tty' | 'plain' | 'silent';

export async function runSteps(steps: Step[], state: InstallState, display: Display, write: (line: string) => void): Promise<void> {
  const todo = steps.filter((st) => !(state.opts.dryRun && st.writes));
  const run = (st: Step) => timed(state.timings, st.title, (parts) => st.run(state, parts));
  try {
    if (display === 'tty') {
      // Loaded for a terminal only: plain and --json runs (scripts, the updater's installer) need none of it.
      const { Listr } = await import('listr2');
      await new Listr(
        todo.map((st) => ({
          title: st.title,
          task: async (_: unknown, task: { output: string }) => {
            const out = await run(st);
            if (out) task.output = out;
          },
          rendererOptions: { persistentOutput: true },
        })),
        { exitOnError: true, concurrent: false, rendererOptions: { collapseErrors: false } },
      ).run();
      return;
    }
    for (const st of todo) {
      const out = await run(st);
      if (display === 'plain') write(`==> ${st.title}${out ? `: ${out}` : ''}`);
    }
  } finally {
    await state.unlock?.();
  }
}
