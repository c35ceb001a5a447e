import { Listr } from 'listr2';
import type { InstallState, Step } from './install.js';

/*
 * Runs the steps in order: a live list on a terminal (listr2), plain lines
 * otherwise, nothing with --json. The prefix lock is released whatever
 * happens.
 */

export type Display = 'tty' | 'plain' | 'silent';

export async function runSteps(steps: Step[], state: InstallState, display: Display, write: (line: string) => void): Promise<void> {
  const todo = steps.filter((st) => !(state.opts.dryRun && st.writes));
  try {
    if (display === 'tty') {
      await new Listr(
        todo.map((st) => ({
          title: st.title,
          task: async (_: unknown, task: { output: string }) => {
            const out = await st.run(state);
            if (out) task.output = out;
          },
          rendererOptions: { persistentOutput: true },
        })),
        { exitOnError: true, concurrent: false, rendererOptions: { collapseErrors: false } },
      ).run();
      return;
    }
    for (const st of todo) {
      const out = await st.run(state);
      if (display === 'plain') write(`==> ${st.title}${out ? `: ${out}` : ''}`);
    }
  } finally {
    await state.unlock?.();
  }
}
