import assert from 'node:assert/strict';
import { test } from 'node:test';
import { INSTALL_SUMMARY, MIGRATIONS_DONE, MIGRATIONS_PENDING, releaseOutput } from '../../installer/bundle/release-output.js';
import { InstallerError } from '../../installer/errors.js';

/* What an updater reads from a release's installer is checked, never cast. */

test("a release installer's answer: the JSON of its last line, after its log lines; lists it left out are empty", () => {
  const out =
    'rendering 42 files\nvalidated by supervisord\n{"ok":true,"written":2,"writes":["etc/amqp.conf","bin/engine-che"],"replaced":[]}\n';
  const s = releaseOutput(INSTALL_SUMMARY, out, 'the installer of 0.4.0+abcd1234 (install --json)');
  assert.deepEqual(s.writes, ['etc/amqp.conf', 'bin/engine-che']);
  assert.deepEqual(s.dist, []);
  assert.deepEqual(releaseOutput(MIGRATIONS_DONE, '{"ok":true,"undone":["0.3.0-entity-fields"]}', 'x').undone, ['0.3.0-entity-fields']);
  const pending = releaseOutput(
    MIGRATIONS_PENDING,
    '{"ok":true,"pending":[{"id":"a","description":"d","store":true,"reversible":false}]}',
    'x',
  ).pending;
  assert.equal(pending[0]!.reversible, false);
});

test('an answer that is not JSON, or not in the expected shape, is refused naming the command and the field', () => {
  assert.throws(
    () => releaseOutput(INSTALL_SUMMARY, 'Segmentation fault\n', 'the installer of 0.4.0+abcd1234 (install --json)'),
    (e: unknown) =>
      e instanceof InstallerError &&
      /the installer of 0\.4\.0\+abcd1234 \(install --json\) printed no JSON answer \(last line: "Segmentation fault"\)/.test(e.message),
  );
  assert.throws(
    () => releaseOutput(INSTALL_SUMMARY, '{"writes":"etc/amqp.conf"}', 'the installer of 0.4.0+abcd1234 (install --json)'),
    /answered in an unexpected shape: writes: /,
  );
  assert.throws(() => releaseOutput(MIGRATIONS_PENDING, '{"pending":[{"id":"a"}]}', 'm'), /pending\.0\.description/);
});
