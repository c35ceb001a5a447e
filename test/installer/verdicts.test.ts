import assert from 'node:assert/strict';
import { chmod, chown, mkdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { layoutOf } from '../../installer/layout.js';
import type { RenderedFile } from '../../installer/render/render.js';
import { matching, type Validator } from '../../installer/validate/types.js';
import { readVerdicts, verdictOf, verdictsFile, writeVerdicts } from '../../installer/validate/verdicts.js';
import { removeDir, tempDir } from '../helpers/index.js';

/*
 * What a validator is skipped on: the verdict is keyed on the content of
 * every file it reads, the program that checks, and the release; the record
 * of accepted verdicts is root's or not believed.
 */

let dir: string;
before(async () => {
  dir = await tempDir('verdicts');
});
after(async () => {
  await removeDir(dir);
});

const file = (target: string, content: string, mode = 0o644): RenderedFile => ({ target, content, mode, secret: false, kind: 'conffile' });

const TREE = [
  file('etc/supervisord.conf', '[include]\nfiles = supervisord.d/*.conf\n'),
  file('etc/supervisord.d/webserver.conf', '[program:webserver]\ncommand=bin/webserver\n'),
  file('etc/collectd.conf', 'Interval 10\n'),
  file('bin/webserver', '#!/bin/sh\nexec node\n', 0o755),
];

const supervisord = (tool: string): Validator => ({
  program: 'supervisord',
  applies: matching(/^etc\/supervisord\.conf$/),
  reads: matching(/^(etc\/(supervisord\.conf|supervisord\.d\/)|bin\/)/),
  tools: [tool],
  run: async () => [],
});

test('a verdict changes with any byte, mode or name of a file the validator reads, and with nothing else', async () => {
  const tool = path.join(dir, 'supervisord');
  await writeFile(tool, '#!/usr/bin/python3\n');
  const v = supervisord(tool);
  const base = await verdictOf(v, TREE, '0.4.0+aaaaaaaa');
  assert.match(base, /^[0-9a-f]{64}$/);
  assert.equal(await verdictOf(v, [...TREE].reverse(), '0.4.0+aaaaaaaa'), base, 'the order files come in does not matter');

  const edit = (target: string, change: (f: RenderedFile) => RenderedFile) => TREE.map((f) => (f.target === target ? change(f) : f));
  // An included file, the program it runs, and its mode: all read by supervisord.
  for (const changed of [
    edit('etc/supervisord.d/webserver.conf', (f) => ({ ...f, content: f.content.replace('webserver', 'webserverX') })),
    edit('bin/webserver', (f) => ({ ...f, content: `${f.content} ` })),
    edit('bin/webserver', (f) => ({ ...f, mode: 0o644 })),
    [...TREE, file('etc/supervisord.d/engines.conf', '[group:x]\n')],
  ])
    assert.notEqual(await verdictOf(v, changed, '0.4.0+aaaaaaaa'), base);
  // A file it does not read.
  assert.equal(
    await verdictOf(
      v,
      edit('etc/collectd.conf', (f) => ({ ...f, content: 'Interval 60\n' })),
      '0.4.0+aaaaaaaa',
    ),
    base,
  );
  // Another release (other templates, another validator's code).
  assert.notEqual(await verdictOf(v, TREE, '0.4.0+bbbbbbbb'), base);
  // The program replaced (a package upgrade): checked again.
  await utimes(tool, new Date(), new Date(Date.now() + 5000));
  assert.notEqual(await verdictOf(v, TREE, '0.4.0+aaaaaaaa'), base);
});

test('the record is written only when it changes, and one root did not write alone is not believed', async () => {
  const layout = layoutOf(path.join(dir, 'prefix'));
  await mkdir(layout.pkgmgr, { recursive: true });
  const warnings: string[] = [];
  assert.deepEqual(await readVerdicts(layout, (w) => warnings.push(w)), {}, 'none yet');
  const accepted = { supervisord: 'a'.repeat(64), 'collectd -T': 'b'.repeat(64) };
  assert.equal(await writeVerdicts(layout, {}, accepted), true);
  const written = await stat(verdictsFile(layout));
  assert.equal(written.mode & 0o777, 0o644);
  assert.deepEqual(await readVerdicts(layout, (w) => warnings.push(w)), accepted);
  assert.equal(await writeVerdicts(layout, accepted, { 'collectd -T': 'b'.repeat(64), supervisord: 'a'.repeat(64) }), false);
  assert.equal((await stat(verdictsFile(layout))).mtimeMs, written.mtimeMs, 'the same record is not written again');
  assert.equal(warnings.length, 0);

  if (process.getuid?.() !== 0) return;
  // Writable by the service user, or its: every validator runs again, and the run says why.
  await chmod(verdictsFile(layout), 0o666);
  assert.deepEqual(await readVerdicts(layout, (w) => warnings.push(w)), {});
  assert.match(warnings.at(-1) ?? '', /validated\.json is writable by others .*: ignored, every file is validated again/);
  await chmod(verdictsFile(layout), 0o644);
  await chown(verdictsFile(layout), 65534, 65534);
  assert.deepEqual(await readVerdicts(layout, (w) => warnings.push(w)), {});
  assert.match(warnings.at(-1) ?? '', /validated\.json belongs to uid 65534/);
  // Not JSON of ours either.
  await chown(verdictsFile(layout), 0, 0);
  await writeFile(verdictsFile(layout), '{"format":1,"accepted":{"supervisord":"yes"}}');
  assert.deepEqual(await readVerdicts(layout, (w) => warnings.push(w)), {});
  assert.match(await readFile(verdictsFile(layout), 'utf8'), /yes/, 'reading never rewrites it');
});
