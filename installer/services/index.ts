import type { ManagedDir } from '../apply/dirs.js';
import type { RenderContext } from '../render/context.js';
import type { FileSpec } from '../render/file-spec.js';
import type { Settings } from '../settings/schema.js';
import { collectd } from './collectd.js';
import { engines } from './engines.js';
import { mongodb } from './mongodb.js';
import { platformDirectories, platformFiles, platformNeeds } from './platform.js';
import { postgresql } from './postgresql.js';
import { rabbitmq } from './rabbitmq.js';
import type { Need, Port, ReadyCheck, ServiceModule, Tier } from './types.js';
import { webserver } from './webserver.js';

/*
 * The services of the appliance, in start order within a tier. Everything
 * that differs per service is derived from this list.
 */

export const SERVICES: readonly ServiceModule[] = [rabbitmq, mongodb, postgresql, collectd, engines, webserver];

export const TIERS: readonly Tier[] = ['BACKEND', 'MIDDLEWARE', 'FRONTEND'];

export const enabledServices = (s: Settings) => SERVICES.filter((x) => x.enabled(s));

/** Every file the installer owns for these settings. */
export const catalogOf = (ctx: RenderContext): FileSpec[] => [
  ...platformFiles(ctx),
  ...enabledServices(ctx.settings).flatMap((x) => x.files(ctx)),
];

export const directoriesOf = (ctx: RenderContext): ManagedDir[] => [
  ...platformDirectories(ctx),
  ...enabledServices(ctx.settings).flatMap((x) => x.directories(ctx)),
];

export const needsOf = (s: Settings): Need[] => [...platformNeeds(s), ...enabledServices(s).flatMap((x) => x.needs(s))];

export const portsOf = (s: Settings): Port[] => enabledServices(s).flatMap((x) => x.ports(s));

/** hypcontrol's tiers: enabled services by tier. */
export const tiersOf = (s: Settings): Record<Tier, string[]> =>
  Object.fromEntries(
    TIERS.map((t) => [
      t,
      enabledServices(s)
        .filter((x) => x.tier === t)
        .map((x) => x.name),
    ]),
  ) as Record<Tier, string[]>;

/** The systemd units canopsis.target wants. */
export const unitsOf = (ctx: RenderContext): string[] => enabledServices(ctx.settings).flatMap((x) => x.units(ctx));

/** Readiness per service name; services without one rely on their process state. */
export const READY: Readonly<Record<string, ReadyCheck>> = Object.fromEntries(
  SERVICES.filter((x) => x.ready).map((x) => [x.name, x.ready!]),
);

/**
 * The services an update that wrote `written` restarts, in start order.
 * What runs the release's code restarts with a new release; an update that
 * keeps the release (the same bundle again) and writes nothing restarts
 * nothing: every process already runs that code with those files.
 */
export const restartFor = (written: string[], release: 'new' | 'same' = 'new'): string[] =>
  release === 'same' && written.length === 0 ? [] : SERVICES.filter((x) => x.restarts(written)).map((x) => x.name);

/** What runs the release's own code: stopped while store data is reshaped. */
export const PIPELINE: readonly string[] = SERVICES.filter((x) => x.restarts([])).map((x) => x.name);
