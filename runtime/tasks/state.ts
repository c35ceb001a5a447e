import type { EngineHandle } from './types.js';

/**
 * Per-process state of a task module, made once (collections opened and
 * indexed on first use) and kept in the engine's state map.
 */
export async function once<T>(engine: EngineHandle, key: string, make: () => Promise<T>): Promise<T> {
  let pending = engine.state.get(key) as Promise<T> | undefined;
  if (!pending) {
    pending = make();
    engine.state.set(key, pending);
    // A failed first use is retried on the next event rather than remembered.
    pending.catch(() => engine.state.delete(key));
  }
  return pending;
}
