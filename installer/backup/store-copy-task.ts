#!/usr/bin/env node
import { readFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { prefixFrom } from '../../runtime/config/files.js';
import { runCopyOp } from './sqlite-copy.js';
import { transferToPostgresql } from './store-transfer.js';

/*
 * The embedded store copied out or back by the service user, in a child
 * process of the installed release (store-copy.ts starts it):
 *   backup   the copy goes to stdout (a file root opened in its own directory)
 *   restore  the copy comes from stdin (likewise) and replaces the store
 *   clear    the store is removed (the backup had none)
 *   migrate  the whole store copied into the PostgreSQL store whose URL
 *            comes on stdin ({"url": ..., "source": ...}, source the
 *            embedded store file when runtime.conf names the target
 *            already): migrate-store
 * and one JSON report on file descriptor 3.
 */

/** The target URL (and the source file, if given), from standard input (JSON), where no other user can see it. */
function migrateInput(): { url: string; source?: string } {
  const { url, source } = JSON.parse(readFileSync(0, 'utf8')) as { url?: unknown; source?: unknown };
  if (typeof url !== 'string' || !url) throw new Error('migrate: expected {"url": "postgresql://..."} on standard input');
  if (source !== undefined && (typeof source !== 'string' || !path.isAbsolute(source)))
    throw new Error('migrate: "source" must be the absolute path of the embedded store file');
  return source === undefined ? { url } : { url, source };
}

try {
  const op = process.argv[2] ?? '';
  // The copy goes out on stdout and comes in on stdin: descriptors of files root opened.
  const report =
    op === 'migrate'
      ? await (async () => {
          const { url, source } = migrateInput();
          return transferToPostgresql(prefixFrom(), url, source);
        })()
      : await runCopyOp(prefixFrom(), op, op === 'backup' ? 1 : op === 'restore' ? 0 : undefined);
  writeSync(3, `${JSON.stringify(report)}\n`);
} catch (e) {
  process.stderr.write(`store-copy: ${(e as Error).message}\n`);
  process.exitCode = 1;
}
