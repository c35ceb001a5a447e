import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Manifest, sha256 } from '../../installer/apply/manifest.js';
import { type DiskState, decide, plan } from '../../installer/apply/plan.js';
import type { RenderedFile } from '../../installer/render/render.js';

const conf = (target: string, content: string, mode = 0o644): RenderedFile => ({ target, content, mode, secret: false, kind: 'conffile' });
const disk = (content: string, mode = 0o644, uid = 0, gid = 0) => ({ sha256: sha256(content), mode, uid, gid, content });

test('three-way decisions on a conffile: ours then, the file now, ours now', () => {
  const v1 = 'ours v1\n';
  const v2 = 'ours v2\n';
  const edited = 'operator edit\n';
  assert.equal(decide(conf('f', v1), undefined, undefined), 'create');
  assert.equal(decide(conf('f', v1), disk(v1), sha256(v1)), 'unchanged');
  assert.equal(decide(conf('f', v1), disk(v1, 0o600), sha256(v1)), 'chmod');
  assert.equal(decide(conf('f', v2), disk(v1), sha256(v1)), 'update', 'untouched: replaced');
  assert.equal(decide(conf('f', v1), disk(edited), sha256(v1)), 'keep', 'edited, ours unchanged: kept silently');
  assert.equal(decide(conf('f', v2), disk(edited), sha256(v1)), 'dist', 'both changed: kept, ours as .dist');
  assert.equal(decide(conf('f', v2), disk(edited), undefined), 'dist', "a file we never wrote is the operator's");
});

test('a file of ours with the wrong owner is taken back, content untouched', () => {
  const secret: RenderedFile = { target: 'etc/amqp.conf', content: 'x', mode: 0o640, secret: true, kind: 'conffile' };
  // 0.3.0 left secrets to the service user (uid 999), who could rewrite what root renders from.
  assert.equal(decide(secret, disk('x', 0o640, 999, 999), sha256('x'), { uid: 0, gid: 999 }), 'chmod');
  assert.equal(decide(secret, disk('x', 0o640, 0, 999), sha256('x'), { uid: 0, gid: 999 }), 'unchanged');
  assert.equal(decide(secret, disk('x', 0o640, 999, 999), sha256('x')), 'unchanged', 'not root: owners are not ours to give');
});

test('programs are always ours; the settings file follows its new text', () => {
  const prog: RenderedFile = { target: 'bin/x', content: 'new', mode: 0o755, secret: false, kind: 'program' };
  assert.equal(decide(prog, disk('edited', 0o755), sha256('old')), 'update');
  const settings: RenderedFile = { target: 'etc/canopsis.ini', content: 'a = 2', mode: 0o644, secret: false, kind: 'settings' };
  assert.equal(decide(settings, disk('a = 2'), undefined), 'unchanged');
  assert.equal(decide(settings, disk('a = 1'), undefined), 'update');
});

test('plan: a .dist already up to date is not rewritten; files we stopped shipping are removed unless edited', () => {
  const v1 = 'v1';
  const v2 = 'v2';
  const manifest: Manifest = {
    format: 1,
    version: '1.0.0',
    release: '1.0.0+00000000',
    files: {
      'etc/a.conf': { sha256: sha256(v1), mode: 0o644, owner: 'root', kind: 'conffile' },
      'etc/gone.conf': { sha256: sha256(v1), mode: 0o644, owner: 'root', kind: 'conffile' },
      'etc/gone-edited.conf': { sha256: sha256(v1), mode: 0o644, owner: 'root', kind: 'conffile' },
    },
  };
  const state: DiskState = new Map([
    ['etc/a.conf', disk('edit')],
    ['etc/a.conf.dist', disk(v2)],
    ['etc/gone.conf', disk(v1)],
    ['etc/gone-edited.conf', disk('edit')],
  ]);
  const p = plan([conf('etc/a.conf', v2)], state, manifest);
  const by = Object.fromEntries(p.map((f) => [f.target, [f.action, f.write]]));
  assert.deepEqual(by, {
    'etc/a.conf': ['dist', false],
    'etc/gone.conf': ['remove', true],
    'etc/gone-edited.conf': ['orphan', false],
  });
});
