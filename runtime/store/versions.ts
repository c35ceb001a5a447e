import type { Store } from './types.js';

/*
 * A counter per kind of configuration document (scenarios, pbehaviors):
 * the API bumps it on every change, and an engine that caches the
 * documents reads the one counter to know whether its copy is still good,
 * in every process, at once, without a message to each.
 */

export const VERSIONS = 'config_versions';

export async function bumpVersion(store: Store, name: string): Promise<void> {
  await store.collection<{ n: number }>(VERSIONS).modify(name, (cur) => ({ n: (cur?.n ?? 0) + 1 }));
}

export async function versionOf(store: Store, name: string): Promise<number> {
  return (await store.collection<{ n: number }>(VERSIONS).get(name))?.n ?? 0;
}

/** A cache of what `load` reads, kept until the version moves or `maxAge` seconds pass. */
export async function cached<T>(
  state: Map<string, unknown>,
  key: string,
  store: Store,
  load: () => Promise<T>,
  maxAge: number,
): Promise<T> {
  const version = await versionOf(store, key);
  const now = Date.now() / 1000;
  const hit = state.get(`cache.${key}`) as { at: number; version: number; value: T } | undefined;
  if (hit && hit.version === version && now - hit.at < maxAge) return hit.value;
  const value = await load();
  state.set(`cache.${key}`, { at: now, version, value });
  return value;
}
