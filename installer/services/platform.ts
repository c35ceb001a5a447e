import path from 'node:path';
import { type ManagedDir, stateDirs } from '../apply/dirs.js';
import type { RenderContext } from '../render/context.js';
import { conf, type FileSpec, program, UNIT_DIR } from '../render/file-spec.js';
import type { Settings } from '../settings/schema.js';
import type { Need } from './types.js';

/*
 * What every appliance has whichever services run: the process supervisor
 * and its main file, the commands of bin/, the runtime's own settings and
 * the directories of the tree.
 */

/**
 * The node flags bin/engine-launcher runs with, measured against V8's
 * defaults by bench/memory.ts. V8 sizes its heap for the host: with GiBs of
 * memory it lets an engine's young generation grow to 48-64 MiB under a
 * 1000-message prefetch, and its old generation to 4 x what is live before
 * a full GC, when an engine keeps 10-20 MiB live. A 2 MiB semi-space, and a
 * 512 MiB heap limit (under which V8 grows the old generation by ~1.4 x, as
 * on a small device), keep each engine 30-60 MiB smaller under load for the
 * same CPU time per event. The limit is far above what an engine keeps
 * live; one that reached it would exit and be restarted by its supervisor
 * rather than take the host's memory.
 */
export const ENGINE_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2', '--max-old-space-size=512'];

/** Node flags per command of bin/ (none: V8's defaults). */
const NODE_FLAGS: Partial<Record<string, readonly string[]>> = { 'engine-launcher': ENGINE_NODE_FLAGS };

export function platformFiles(ctx: RenderContext): FileSpec[] {
  return [
    conf('etc/supervisord.conf', 'templates/supervisord.conf.hbs'),
    conf('etc/hypcontrol.conf', 'templates/hypcontrol.conf.hbs'),
    conf('etc/go-engines-vars.conf', 'templates/go-engines-vars.conf.hbs'),
    conf(`${UNIT_DIR}/canopsis.target`, 'systemd/canopsis.target.hbs'),
    // The broker and the store as the engines and the webserver reach them (credentials inside).
    conf('etc/amqp.conf', 'templates/amqp.conf.hbs', true),
    conf('etc/runtime.conf', 'templates/runtime.conf.hbs', true),
    // The site's engine chain: the engines run it, the webserver and the tools read it, on whichever host.
    conf('etc/amqp2engines.conf', 'templates/amqp2engines.conf.hbs'),
    conf('etc/event_filter.yaml', 'templates/event_filter.yaml.hbs'),
    ...Object.entries(ctx.runtime).map(([command, script]) =>
      program(`bin/${command}`, 'templates/bin/node-command.hbs', { script, nodeFlags: NODE_FLAGS[command] ?? [] }),
    ),
  ];
}

/**
 * Directories with their owner and mode. Root keeps everything above the
 * service user's own directories (var/ and var/lib included), so that the
 * service user can neither rename nor replace the installer state in
 * var/lib/pkgmgr, nor anything root reads.
 */
export function platformDirectories(ctx: RenderContext): ManagedDir[] {
  const root = (dir: string): ManagedDir => ({ dir, owner: 'root', mode: 0o755 });
  const service = (dir: string, mode = 0o755): ManagedDir => ({ dir, owner: 'service', mode });
  const lib = path.dirname(ctx.paths.current);
  return [
    root(ctx.paths.etc),
    root(path.dirname(lib)),
    root(lib),
    root(ctx.paths.bin),
    root(path.join(ctx.paths.etc, 'supervisord.d')),
    root(path.join(lib, 'releases')),
    root(ctx.paths.plugins),
    ...stateDirs(ctx.layout),
    service(ctx.paths.log),
    service(ctx.paths.run),
    ...(ctx.store.embedded ? [service(path.dirname(ctx.store.embeddedFile), 0o750)] : []),
  ];
}

export function platformNeeds(s: Settings): Need[] {
  return s.canopsis.init === 'supervisord'
    ? [{ key: 'supervisord', binary: 'supervisord', neededBy: 'canopsis.init=supervisord', packages: ['supervisor'] }]
    : [{ key: 'systemctl', binary: 'systemctl', neededBy: 'canopsis.init=systemd', packages: ['systemd'] }];
}
