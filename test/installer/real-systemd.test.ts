import assert from 'node:assert/strict';
import { access, chmod, constants, cp, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { buildInstall, isolatedPorts, removeDir, tempDir } from '../helpers/index.js';

/*
 * The rendered systemd units, read by systemd itself. systemd is not PID 1
 * here, so nothing is started: `systemd-analyze verify` checks the units, and
 * `systemd --test` loads them from the prefix (template, instances, drop-ins)
 * and dumps every unit's effective settings, as `systemctl show` would.
 */

const root = process.getuid?.() === 0;
const SYSTEMD = '/lib/systemd/systemd';
const NOBODY = '65534';

/** Engine instances of the default engines with che at numprocs=2. */
const INSTANCES = [
  'engine-cleaner',
  'engine-event_filter',
  'engine-che',
  'engine-che.1',
  'engine-pbehavior',
  'engine-axe',
  'engine-action',
  'engine-perfdata',
  'engine-collectdgw',
];
const engineUnit = (instance: string) => `canopsis-engine-go@${instance}.service`;

async function verify(unitDir: string, units: string[]) {
  return execa('systemd-analyze', ['verify', '--man=no', ...units.map((u) => path.join(unitDir, u))], {
    reject: false,
    all: true,
    env: { SYSTEMD_UNIT_PATH: `${unitDir}:`, SYSTEMD_LOG_COLOR: '0' },
  });
}

/**
 * `systemd --test --system` dumps the units it loaded, one section per unit:
 *   \t-> Unit canopsis-engine-go@engine-che.service:
 *   \t\tFragment Path: …/canopsis-engine-go@.service
 *   \t\tDropIn Path: …/canopsis-engine-go@engine-che.service.d/override.conf
 *   \t\t-> ExecStart:
 *   \t\t\tCommand Line: /usr/bin/env …/bin/engine-che -publishQueue Engine_pbehavior
 * It refuses to run as root in test mode, so it runs as nobody (hence a
 * world-readable prefix). The trailing colon of SYSTEMD_UNIT_PATH appends the
 * default unit directories (targets, slices) the units depend on.
 */
async function systemdTest(unitDir: string, unit: string): Promise<Map<string, string[]>> {
  const r = await execa(
    'setpriv',
    [
      `--reuid=${NOBODY}`,
      `--regid=${NOBODY}`,
      '--clear-groups',
      'env',
      'HOME=/tmp',
      `SYSTEMD_UNIT_PATH=${unitDir}:`,
      'SYSTEMD_LOG_COLOR=0',
      SYSTEMD,
      '--test',
      '--system',
      `--unit=${unit}`,
      '--log-target=console',
    ],
    { reject: false, all: true },
  );
  assert.equal(r.exitCode, 0, `systemd --test --unit=${unit} exited ${r.exitCode}:\n${r.stderr}`);
  const sections = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of r.stdout.split('\n')) {
    const head = /^\t-> Unit (.+):$/.exec(line);
    if (head) {
      current = [];
      sections.set(head[1]!, current);
    } else if (current && line.startsWith('\t\t')) current.push(line.slice(2));
  }
  assert.ok(sections.has(unit), `systemd --test did not dump ${unit}; it dumped ${sections.size} units:\n${r.all.slice(0, 2000)}`);
  return sections;
}

/** The command lines of a unit's ExecStart= (after drop-ins are applied). */
function execStart(section: string[]): string[] {
  const out: string[] = [];
  let inExecStart = false;
  for (const line of section) {
    if (!line.startsWith('\t')) inExecStart = line === '-> ExecStart:';
    else if (inExecStart && line.startsWith('\tCommand Line: ')) out.push(line.slice('\tCommand Line: '.length));
  }
  return out;
}

const values = (section: string[], key: string) => section.filter((l) => l.startsWith(`${key}: `)).map((l) => l.slice(key.length + 2));

describe('the rendered systemd units read by systemd', {
  skip: !root && 'needs root (the install creates the canopsis user; systemd --test runs as nobody)',
}, () => {
  let dir = '';
  let prefix = '';
  let unitDir = '';
  let units: string[] = [];

  before(async () => {
    dir = await tempDir('systemd');
    // systemd --test runs as nobody: the unit directory and its parents must be readable by it.
    await chmod(dir, 0o755);
    prefix = path.join(dir, 'canopsis');
    unitDir = path.join(prefix, 'etc', 'systemd', 'system');
    const r = await buildInstall([
      '--prefix',
      prefix,
      ...isolatedPorts(5720),
      '--set',
      'canopsis.init=systemd',
      '--set',
      'engine:che.numprocs=2',
    ]);
    assert.equal(r.exitCode, 0, r.all);
    units = [
      ...INSTANCES.map(engineUnit),
      'canopsis.target',
      'canopsis-webserver.service',
      'canopsis-rabbitmq.service',
      'canopsis-collectd.service',
    ];
  });

  after(async () => {
    if (dir) await removeDir(dir);
  });

  it('systemd-analyze verify accepts every rendered unit and engine instance without a word', async () => {
    const r = await verify(unitDir, units);
    assert.equal(r.all, '', `systemd-analyze verify complained:\n${r.all}`);
    assert.equal(r.exitCode, 0);
  });

  it('systemd-analyze verify does complain about a broken template (the check above can fail)', async () => {
    const broken = path.join(dir, 'broken-units');
    await cp(unitDir, broken, { recursive: true });
    const template = path.join(broken, 'canopsis-engine-go@.service');
    const text = await readFile(template, 'utf8');
    assert.match(text, /^Restart=always$/m);
    await writeFile(template, text.replace(/^Restart=always$/m, 'Restart=allways'));
    const r = await verify(broken, [engineUnit('engine-che'), engineUnit('engine-axe'), 'canopsis.target', 'canopsis-webserver.service']);
    assert.match(r.all ?? '', /canopsis-engine-go@\.service:\d+: Failed to parse service restart specifier, ignoring: allways/);
  });

  it('each che worker runs its bin/engine-che* script with -publishQueue Engine_pbehavior from the drop-in', async () => {
    for (const instance of ['engine-che', 'engine-che.1']) {
      const unit = engineUnit(instance);
      const section = (await systemdTest(unitDir, unit)).get(unit)!;
      assert.deepEqual(values(section, 'Fragment Path'), [path.join(unitDir, 'canopsis-engine-go@.service')], section.join('\n'));
      assert.deepEqual(values(section, 'DropIn Path'), [path.join(unitDir, `${unit}.d`, 'override.conf')], section.join('\n'));
      assert.deepEqual(values(section, 'User'), ['canopsis']);
      // The drop-in's empty ExecStart= resets the template's: exactly one command remains.
      const script = path.join(prefix, 'bin', instance);
      assert.deepEqual(execStart(section), [`/usr/bin/env ${script} -publishQueue Engine_pbehavior`], section.join('\n'));
      await access(script, constants.X_OK);
    }
  });

  it('axe, which has no drop-in, runs its script without -publishQueue', async () => {
    const unit = engineUnit('engine-axe');
    const section = (await systemdTest(unitDir, unit)).get(unit)!;
    assert.deepEqual(values(section, 'DropIn Path'), [], section.join('\n'));
    const script = path.join(prefix, 'bin', 'engine-axe');
    assert.deepEqual(execStart(section), [`/usr/bin/env ${script}`], section.join('\n'));
    await access(script, constants.X_OK);
  });

  it('canopsis.target wants the broker, collectd, the webserver and every engine worker', async () => {
    const section = (await systemdTest(unitDir, 'canopsis.target')).get('canopsis.target')!;
    const wants = values(section, 'Wants')
      .map((v) => v.replace(/ \(.*\)$/, ''))
      .sort();
    assert.deepEqual(wants, [...units].filter((u) => u !== 'canopsis.target').sort(), section.join('\n'));
  });
});
