import path from 'node:path';

/**
 * Every path of the installed tree, derived from the prefix alone so that the
 * installer, the runtime and the tests agree on where things live.
 */
export interface Layout {
  prefix: string;
  bin: string;
  etc: string;
  settingsFile: string;
  secretsFile: string;
  lib: string;
  releases: string;
  current: string;
  var: string;
  log: string;
  engineLog: string;
  varLib: string;
  run: string;
  pkgmgr: string;
  manifest: string;
  plugins: string;
}

export function layoutOf(prefix: string): Layout {
  const p = path.resolve(prefix);
  const etc = path.join(p, 'etc');
  const v = path.join(p, 'var');
  const lib = path.join(p, 'lib', 'canopsis');
  const pkgmgr = path.join(v, 'lib', 'pkgmgr');
  return {
    prefix: p,
    bin: path.join(p, 'bin'),
    etc,
    settingsFile: path.join(etc, 'canopsis.ini'),
    secretsFile: path.join(etc, 'canopsis-secrets.ini'),
    lib,
    releases: path.join(lib, 'releases'),
    current: path.join(lib, 'current'),
    var: v,
    log: path.join(v, 'log'),
    engineLog: path.join(v, 'log', 'engines'),
    varLib: path.join(v, 'lib'),
    run: path.join(v, 'run'),
    pkgmgr,
    manifest: path.join(pkgmgr, 'manifest.json'),
    plugins: path.join(lib, 'plugins'),
  };
}

/** A settings path such as `var/lib/mongodb` is relative to the prefix; an absolute one is kept. */
export function underPrefix(layout: Layout, p: string): string {
  return path.isAbsolute(p) ? path.normalize(p) : path.join(layout.prefix, p);
}
