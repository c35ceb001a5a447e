import { rm, stat, writeFile } from 'node:fs/promises';
import { DependencyError, lastLines } from '../errors.js';
import { execa } from './exec.js';

/*
 * Missing Debian packages, installed with apt-get. Package scripts must not
 * start the distribution's own services (a second RabbitMQ on 5672, a system
 * collectd): a temporary policy-rc.d refuses every start, the Debian way.
 */

const POLICY = '/usr/sbin/policy-rc.d';

export async function dpkgInstalled(pkg: string): Promise<boolean> {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format syntax
  const r = await execa('dpkg-query', ['-W', '-f', '${Status}', pkg], { reject: false });
  return r.exitCode === 0 && r.stdout.includes('install ok installed');
}

export async function aptInstall(packages: string[], log: (line: string) => void): Promise<string[]> {
  const wanted: string[] = [];
  for (const p of [...new Set(packages)]) if (!(await dpkgInstalled(p))) wanted.push(p);
  if (wanted.length === 0) return [];
  let ownPolicy = false;
  try {
    await stat(POLICY);
  } catch {
    await writeFile(POLICY, '#!/bin/sh\n# Written by canopsis build-install while it installs packages.\nexit 101\n', { mode: 0o755 });
    ownPolicy = true;
  }
  const env = { DEBIAN_FRONTEND: 'noninteractive' };
  try {
    log(`apt-get install ${wanted.join(' ')}`);
    let r = await execa('apt-get', ['install', '-y', '--no-install-recommends', ...wanted], { env, reject: false, all: true });
    if (r.exitCode !== 0) {
      // A fresh machine may have no package lists yet.
      log('apt-get update');
      await execa('apt-get', ['update'], { env, reject: false });
      r = await execa('apt-get', ['install', '-y', '--no-install-recommends', ...wanted], { env, reject: false, all: true });
    }
    if (r.exitCode !== 0) {
      const tail = lastLines(r.all);
      throw new DependencyError(`apt-get install ${wanted.join(' ')} failed (exit ${r.exitCode}): ${tail}`);
    }
    return wanted;
  } finally {
    if (ownPolicy) await rm(POLICY, { force: true });
  }
}
