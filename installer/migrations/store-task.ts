#!/usr/bin/env node
import { prefixFrom } from '../../runtime/config/files.js';
import { MIGRATIONS } from './index.js';
import { inProcess, type StoreJob } from './store-jobs.js';

/*
 * The store work of an installer run, in a child process that runs as the
 * service user (store-jobs.ts starts it): one job as JSON in argv, one
 * result as JSON on stdout.
 */

try {
  const job = JSON.parse(process.argv[2] ?? '') as StoreJob;
  const result = await inProcess(prefixFrom(), MIGRATIONS)(job);
  process.stdout.write(`${JSON.stringify(result)}\n`);
} catch (e) {
  process.stderr.write(`store-task: ${(e as Error).message}\n`);
  process.exitCode = 1;
}
