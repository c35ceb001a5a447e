import type { Prepared } from '../prepare.js';
import { needsOf, SERVICES } from '../services/index.js';
import { platformNeeds } from '../services/platform.js';
import type { Settings } from '../settings/schema.js';

/*
 * The programs the enabled services need (each service module says which,
 * and the Debian packages that bring them), and which of them this host
 * lacks.
 */

export interface MissingBinary {
  binary: string;
  neededBy: string;
  packages: string[];
  /** How to get it when no Debian package does. */
  fix: string;
}

export function missingBinaries(p: Prepared): MissingBinary[] {
  return needsOf(p.settings)
    .filter((n) => !p.facts.binaries[n.key])
    .map((n) => ({ binary: n.binary, neededBy: n.neededBy, packages: n.packages, fix: n.fix ?? `install ${n.binary}` }));
}

/** Every Debian package any configuration can need (what the tests exercise). */
export function allPackages(): string[] {
  const everything = (init: 'supervisord' | 'systemd') =>
    ({
      canopsis: { init },
      rabbitmq: { mode: 'local' },
      store: { backend: 'mongodb', mongodb_mode: 'local' },
      collectd: { enabled: true },
      webserver: { tls: true, tls_cert: '' },
    }) as unknown as Settings;
  // systemd is the host's own init, not ours to install.
  const needs = [...platformNeeds(everything('supervisord')), ...SERVICES.flatMap((x) => x.needs(everything('supervisord')))];
  return [...new Set(needs.flatMap((n) => n.packages))];
}
