#!/usr/bin/env node
import { writeSync } from 'node:fs';
import { prefixFrom } from '../../runtime/config/files.js';
import { runCopyOp } from './sqlite-copy.js';

/*
 * The embedded store copied out or back by the service user, in a child
 * process of the installed release (store-copy.ts starts it):
 *   backup   the copy goes to stdout (a file root opened in its own directory)
 *   restore  the copy comes from stdin (likewise) and replaces the store
 *   clear    the store is removed (the backup had none)
 * and one JSON report on file descriptor 3.
 */

try {
  const op = process.argv[2] ?? '';
  // The copy goes out on stdout and comes in on stdin: descriptors of files root opened.
  const report = await runCopyOp(prefixFrom(), op, op === 'backup' ? 1 : op === 'restore' ? 0 : undefined);
  writeSync(3, `${JSON.stringify(report)}\n`);
} catch (e) {
  process.stderr.write(`store-copy: ${(e as Error).message}\n`);
  process.exitCode = 1;
}
