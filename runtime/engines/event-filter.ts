import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { EngineHandle, TaskContext, TaskModule } from '../tasks/types.js';
import { applyRules, type CompiledRule, compileRules } from './event-filter-rules.js';

/*
 * event_filter: ordered rules from etc/event_filter.yaml, reloaded on beat
 * when the file changed. A bad file keeps the last good rules and says why.
 */

export const RULES_FILE = 'etc/event_filter.yaml';

interface RulesState {
  rules: CompiledRule[];
  mtimeMs: number;
}

/** One reload at a time per process: the first event and the first beat may ask together. */
function reload(engine: EngineHandle, ctx: TaskContext): Promise<RulesState> {
  const running = engine.state.get('rules-loading') as Promise<RulesState> | undefined;
  if (running) return running;
  const p = reloadNow(engine, ctx).finally(() => engine.state.delete('rules-loading'));
  engine.state.set('rules-loading', p);
  return p;
}

async function reloadNow(engine: EngineHandle, ctx: TaskContext): Promise<RulesState> {
  const file = path.join(engine.prefix, RULES_FILE);
  const current = (engine.state.get('rules') as RulesState | undefined) ?? { rules: [], mtimeMs: -1 };
  let mtimeMs: number;
  try {
    mtimeMs = (await stat(file)).mtimeMs;
  } catch {
    if (current.mtimeMs !== 0) ctx.logger.info({ file }, 'no event filter rules file: every event passes');
    const none = { rules: [], mtimeMs: 0 };
    engine.state.set('rules', none);
    return none;
  }
  if (mtimeMs === current.mtimeMs) return current;
  try {
    const rules = compileRules(await readFile(file, 'utf8'), file);
    const next = { rules, mtimeMs };
    engine.state.set('rules', next);
    ctx.logger.info({ file, rules: rules.length }, 'event filter rules loaded');
    return next;
  } catch (e) {
    // Keep filtering with the last good rules; do not retry this version of the file.
    engine.state.set('rules', { ...current, mtimeMs });
    ctx.logger.error(
      { file, err: (e as Error).message, keeping: current.rules.length },
      'event filter rules rejected; keeping the last good rules',
    );
    return current;
  }
}

export const eventFilter: TaskModule = {
  name: 'canopsis.event_filter.process',
  event_processing: async (engine, event, ctx) => {
    const state = (engine.state.get('rules') as RulesState | undefined) ?? (await reload(engine, ctx));
    return applyRules(state.rules, event);
  },
  beat_processing: async (engine, ctx) => {
    await reload(engine, ctx);
  },
};
