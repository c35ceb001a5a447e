import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SettingsError } from '../../installer/errors.js';
import { createRenderer } from '../../installer/render/handlebars.js';
import { defaultSettingsData } from '../../installer/settings/default-file.js';
import { setIniValue } from '../../installer/settings/ini-text.js';
import { parseSetOption, validateSettingsText } from '../../installer/settings/load.js';

const host = { root: true, user: 'root', group: 'root' };
const FILE = '/p/etc/canopsis.ini';

async function defaults(): Promise<string> {
  return createRenderer()('templates/canopsis.ini.hbs', defaultSettingsData(host));
}

function problemsOf(text: string, sets = [] as ReturnType<typeof parseSetOption>[]): string[] {
  try {
    validateSettingsText(text, FILE, host, sets);
  } catch (e) {
    assert.ok(e instanceof SettingsError, String(e));
    return e.details();
  }
  return [];
}

test('the default canopsis.ini is valid and gives the cleaner -> event_filter -> che -> pbehavior -> axe -> action chain', async () => {
  const s = validateSettingsText(await defaults(), FILE, host);
  assert.deepEqual(
    s.engines.map((e) => [e.name, e.next.join(',')]),
    [
      ['cleaner', 'event_filter'],
      ['event_filter', 'che'],
      ['che', 'pbehavior'],
      ['pbehavior', 'axe'],
      ['axe', 'action'],
      ['action', 'perfdata'],
      ['perfdata', ''],
      ['collectdgw', 'che'],
    ],
  );
  assert.equal(s.engines.find((e) => e.name === 'collectdgw')!.exchange, 'canopsis.collectd');
  assert.equal(s.engines[0]!.event_processing, 'canopsis.cleaner.process.event_processing');
  assert.equal(s.engines[0]!.beat_interval, 60);
  assert.equal(s.store.min_free_disk, 20 * 1024 ** 3);
  assert.equal(s.webserver.port, 8082);
  assert.equal(s.canopsis.user, 'canopsis');
  assert.deepEqual(s.dispatchers.event_dispatchers, ['database']);
});

test('a bad value names file:section.key, what was found and what is allowed', async () => {
  const text = setIniValue(await defaults(), 'webserver', 'port', '80800');
  const [p, ...rest] = problemsOf(text);
  assert.equal(rest.length, 0);
  assert.match(p!, /^\/p\/etc\/canopsis\.ini:webserver\.port: found "80800",/);
  assert.match(p!, /65535/);
});

test('every problem is reported at once, and --set values are marked', async () => {
  const sets = [parseSetOption('canopsis.init=upstart'), parseSetOption('store.min_free_disk=lots')];
  let text = await defaults();
  for (const s of sets) text = setIniValue(text, s.section, s.key, s.value);
  text = setIniValue(text, 'rabbitmq', 'colour', 'blue');
  const problems = problemsOf(text, sets);
  assert.equal(problems.length, 3, problems.join('\n'));
  assert.ok(problems.some((p) => p.includes('canopsis.init: found "upstart" (from --set)') && p.includes('supervisord')));
  assert.ok(problems.some((p) => p.includes('store.min_free_disk: found "lots" (from --set)')));
  assert.ok(problems.some((p) => p.includes('rabbitmq.colour')));
});

test('engine chains must name known engines and must not loop', async () => {
  const unknown = problemsOf(setIniValue(await defaults(), 'engine:che', 'next', 'axe,nowhere'));
  assert.ok(
    unknown.some((p) => p.includes('engine:che.next') && p.includes('"axe,nowhere"')),
    unknown.join('\n'),
  );
  const loop = problemsOf(setIniValue(await defaults(), 'engine:axe', 'next', 'cleaner'));
  assert.ok(
    loop.some((p) => /loops/.test(p) && /cleaner -> event_filter -> che -> pbehavior -> axe/.test(p)),
    loop.join('\n'),
  );
});

test('two services on one port are refused', async () => {
  const text = setIniValue(await defaults(), 'webserver', 'port', '5672');
  assert.ok(problemsOf(text).some((p) => p.includes('5672')));
});

test('--set parses section.key=value, engine sections included, and refuses anything else', () => {
  assert.deepEqual(parseSetOption('engine:che.numprocs=3'), { section: 'engine:che', key: 'numprocs', value: '3' });
  assert.deepEqual(parseSetOption('store.mongodb_url=mongodb://h:1/db?a=b'), {
    section: 'store',
    key: 'mongodb_url',
    value: 'mongodb://h:1/db?a=b',
  });
  assert.throws(() => parseSetOption('numprocs=3'), /section\.key=value/);
  assert.throws(() => parseSetOption('store.mongodb_dbpath'), /section\.key=value/);
});

test('setIniValue keeps comments and other keys, adds missing sections and keys', () => {
  const text = '; top\n[a]\n; why x\nx = 1\ny = 2\n';
  assert.equal(setIniValue(text, 'a', 'x', '5'), '; top\n[a]\n; why x\nx = 5\ny = 2\n');
  assert.match(setIniValue(text, 'a', 'z', '3'), /\[a\][\s\S]*z = 3/);
  assert.match(setIniValue(text, 'engine:new', 'next', ''), /\[engine:new\]\nnext = \n?$/);
});

test('an updater passes a credential --set in the environment of the release installer, never on its command line', async () => {
  const { splitSecretSets, secretSetsFromEnv, SECRET_SETS_ENV } = await import('../../installer/settings/secret-sets.js');
  const [args, secret] = splitSecretSets([
    'install',
    '--set',
    'store.mongodb_url=mongodb://u:pw@db1/canopsis',
    '--set',
    'rabbitmq.port=5673',
    '--json',
  ]);
  assert.deepEqual(args, ['install', '--set', 'rabbitmq.port=5673', '--json']);
  assert.deepEqual(secret, ['store.mongodb_url=mongodb://u:pw@db1/canopsis']);
  assert.deepEqual(secretSetsFromEnv({ [SECRET_SETS_ENV]: JSON.stringify(secret) }), secret);
  // The channel carries credentials only: anything else there is refused.
  assert.throws(
    () => secretSetsFromEnv({ [SECRET_SETS_ENV]: JSON.stringify(['canopsis.user=root']) }),
    /expected a JSON list of section\.key=value for store\.mongodb_url/,
  );
});
