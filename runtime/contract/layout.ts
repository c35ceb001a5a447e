import path from 'node:path';

/**
 * Every path of the installed tree, derived from the prefix alone: the
 * installer writes there and the runtime reads there, both through this
 * module, so that no path is spelt twice.
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
  /** The rendered files the runtime reads. */
  files: {
    amqp: string;
    runtime: string;
    webserver: string;
    amqp2engines: string;
    hypcontrol: string;
    supervisord: string;
    apiUsers: string;
    eventFilter: string;
  };
  /** supervisord's control socket. */
  supervisorSocket: string;
  /** The embedded store (store.backend = embedded). */
  storeFile: string;
  /** The webserver's generated certificate pair (webserver.tls without a certificate of the operator's). */
  tls: { cert: string; key: string };
}

export function layoutOf(prefix: string): Layout {
  const p = path.resolve(prefix);
  const etc = path.join(p, 'etc');
  const v = path.join(p, 'var');
  const lib = path.join(p, 'lib', 'canopsis');
  const pkgmgr = path.join(v, 'lib', 'pkgmgr');
  const run = path.join(v, 'run');
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
    run,
    pkgmgr,
    manifest: path.join(pkgmgr, 'manifest.json'),
    plugins: path.join(lib, 'plugins'),
    files: {
      amqp: path.join(etc, 'amqp.conf'),
      runtime: path.join(etc, 'runtime.conf'),
      webserver: path.join(etc, 'webserver.conf'),
      amqp2engines: path.join(etc, 'amqp2engines.conf'),
      hypcontrol: path.join(etc, 'hypcontrol.conf'),
      supervisord: path.join(etc, 'supervisord.conf'),
      apiUsers: path.join(etc, 'api-users.ini'),
      eventFilter: path.join(etc, 'event_filter.yaml'),
    },
    supervisorSocket: path.join(run, 'supervisor.sock'),
    storeFile: path.join(v, 'lib', 'canopsis', 'canopsis.db'),
    tls: { cert: path.join(etc, 'ssl', 'webserver.crt'), key: path.join(etc, 'ssl', 'webserver.key') },
  };
}

/** A settings path such as `var/lib/mongodb` is relative to the prefix; an absolute one is kept. */
export function underPrefix(layout: Layout, p: string): string {
  return path.isAbsolute(p) ? path.normalize(p) : path.join(layout.prefix, p);
}
