import path from 'node:path';
import { lastLines } from '../errors.js';
import { failpoint } from '../failpoint.js';
import { execa } from '../host/exec.js';
import type { Layout } from '../layout.js';
import { PIPELINE } from '../services/index.js';

/*
 * What an update (or its rollback) does to running services: restart what
 * runs the release's code and what reads a changed file, then prove the
 * pipeline with a probe event through the API.
 */

/*
 * Which services an update restarts comes from the service modules
 * (services/index.ts: restartFor, PIPELINE).
 */

const service = (layout: Layout, name: string, action: string) =>
  execa(path.join(layout.bin, 'service'), [name, action], { env: { CPS_PREFIX: layout.prefix }, reject: false, all: true });

export async function stopPipeline(layout: Layout): Promise<void> {
  for (const name of PIPELINE) await service(layout, name, 'stop');
}

/** Restarts `services` in order and sends a probe event; returns what went wrong, if anything. */
export async function restartAndProbe(layout: Layout, services: readonly string[]): Promise<string | undefined> {
  for (const name of services) {
    const r = await service(layout, name, 'restart');
    if (r.exitCode !== 0) return `service ${name} restart: ${lastLines(r.all)}`;
    if (name === 'amqp2engines') failpoint('engines-restarted');
  }
  const probe = await execa(
    path.join(layout.bin, 'send-event'),
    ['--connector', 'build-install', '--connector-name', 'update-probe', '--component', 'canopsis', '--state', '0', '--api'],
    {
      env: { CPS_PREFIX: layout.prefix },
      reject: false,
      all: true,
    },
  );
  return probe.exitCode === 0 ? undefined : `probe event through the API: ${probe.all}`;
}
