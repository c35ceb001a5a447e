import type { ManagedDir } from '../apply/dirs.js';
import type { HostFacts } from '../host/facts.js';
import type { RenderContext } from '../render/context.js';
import type { FileSpec } from '../render/file-spec.js';
import type { Settings } from '../settings/schema.js';

/*
 * What one service of the appliance needs, in one place (as omnibus-gitlab
 * keeps a recipe and a library per service): whether it runs, its files,
 * directories, programs, ports, readiness and tier, and what makes an update
 * restart it. The catalog, preflight, readiness, hypcontrol's tiers, the
 * systemd target and the update's restart decision are all derived from the
 * list in index.ts: adding a service is adding a module.
 */

export type Tier = 'BACKEND' | 'MIDDLEWARE' | 'FRONTEND';

/** A program the service needs and the Debian packages that bring it (none: `fix` says how). */
export interface Need {
  key: keyof HostFacts['binaries'];
  binary: string;
  neededBy: string;
  packages: string[];
  fix?: string;
}

export interface Port {
  /** For messages: "rabbitmq (AMQP)". */
  service: string;
  host: string;
  port: number;
  /** The setting that holds it, for cross-checks: [section, key]. */
  setting: [string, string];
  /** What to do when it is held, beyond "stop what holds it or choose another port". */
  fix?: string;
}

/** "Ready" as an operator means it; a reason when not. */
export type ReadyCheck = (prefix: string) => Promise<string | undefined>;

export interface ServiceModule {
  /** The name `service NAME` and hypcontrol.conf use. */
  name: string;
  tier: Tier;
  enabled(s: Settings): boolean;
  files(ctx: RenderContext): FileSpec[];
  directories(ctx: RenderContext): ManagedDir[];
  needs(s: Settings): Need[];
  ports(s: Settings): Port[];
  /** systemd units started with canopsis.target. */
  units(ctx: RenderContext): string[];
  /**
   * One-time setup after the files are written and before the service
   * first starts (PostgreSQL's data directory), run as `as` (the service
   * user, when root installs). A note for the operator when it did something.
   */
  initialize?(ctx: RenderContext, as: { uid: number; gid: number } | undefined): Promise<string | undefined>;
  /** A deeper check than "its processes run". */
  ready?: ReadyCheck;
  /**
   * Whether an update that wrote `written` (paths relative to the prefix)
   * restarts it. What runs the release's own code restarts on every update.
   */
  restarts(written: string[]): boolean;
}
