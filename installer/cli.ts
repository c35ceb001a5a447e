#!/usr/bin/env node
import { statSync } from 'node:fs';
import module from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/*
 * ./build-install's entry (and every release's: an updater runs
 * <release>/dist/installer/cli.js). It only turns Node's compile cache on
 * before loading the rest: compiling the installer's modules again on every
 * run was a third of a no-change run.
 */

/**
 * The cache lives beside the code it caches, in dist/ of this checkout or
 * release, and only when that directory is this user's own and nobody
 * else's to write: whoever can write there could change the code anyway, so
 * root trusts nothing more than it already runs. Elsewhere, no cache.
 */
function compileCache(): void {
  const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  try {
    const st = statSync(dist);
    if (st.uid !== process.geteuid?.() || st.mode & 0o022) return;
    module.enableCompileCache?.(path.join(dist, '.compile-cache'));
  } catch {
    // No cache: slower, not wrong.
  }
}

compileCache();
const { main } = await import('./command-line.js');
process.exitCode = await main(process.argv.slice(2));
