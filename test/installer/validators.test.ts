import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { gatherFacts, type HostFacts } from '../../installer/host/facts.js';
import { checkCollectdConfig } from '../../installer/validate/collectd.js';
import { mongodConfigProblems } from '../../installer/validate/format-checks.js';
import { checkRabbitmqConf } from '../../installer/validate/rabbitmq.js';
import { supervisordPrograms } from '../../installer/validate/supervisord.js';
import { buildInstall, isolatedPorts, removeDir, tempDir } from '../helpers/index.js';

/*
 * Each validator with the real program: it accepts what we render and
 * rejects a broken copy with the program's own words (so the check can fail).
 */

let dir: string;
let prefix: string;
let facts: HostFacts;

before(async () => {
  dir = await tempDir('validators');
  prefix = path.join(dir, 'p');
  facts = await gatherFacts();
  const r = await buildInstall(['--prefix', prefix, ...isolatedPorts(5760)]);
  assert.equal(r.exitCode, 0, r.all);
});
after(async () => {
  await removeDir(dir);
});

async function brokenCopy(rel: string, edit: (text: string) => string): Promise<string> {
  const file = path.join(prefix, `${rel}.broken`);
  await writeFile(file, edit(await readFile(path.join(prefix, rel), 'utf8')));
  return file;
}

test('collectd -T -C accepts the rendered collectd.conf and names a bad option', async () => {
  assert.ok(facts.binaries.collectd, 'collectd is installed (npm test installs collectd-core)');
  assert.equal(await checkCollectdConfig(facts.binaries.collectd, path.join(prefix, 'etc/collectd.conf')), '');
  const broken = await brokenCopy('etc/collectd.conf', (t) =>
    t.replace('ValuesPercentage true', 'ValuesPercentage true\n  Frobnicate yes'),
  );
  assert.match(await checkCollectdConfig(facts.binaries.collectd, broken), /Frobnicate/);
  // The amqp plugin only warns about an option it does not know: still a rejection.
  const amqp = await brokenCopy('etc/collectd.conf', (t) => t.replace('Format "JSON"', 'Format "JSON"\n    RoutingKeyPrefix "x"'));
  assert.match(await checkCollectdConfig(facts.binaries.collectd, amqp), /RoutingKeyPrefix/);
  const unclosed = await brokenCopy('etc/collectd.conf', (t) => t.replace('</Plugin>', ''));
  assert.notEqual(await checkCollectdConfig(facts.binaries.collectd, unclosed), '');
});

test("supervisord's parser lists the programs and refuses a broken include", async () => {
  assert.ok(facts.binaries.supervisord);
  const ok = await supervisordPrograms(facts.binaries.supervisord, path.join(prefix, 'etc/supervisord.conf'));
  assert.ok(ok.ok);
  assert.ok(ok.programs.includes('amqp2engines:engine-che-0'), ok.programs.join());
  const ini = path.join(prefix, 'etc/engines/che.ini');
  const good = await readFile(ini, 'utf8');
  await writeFile(ini, good.replace(/^numprocs=1$/m, 'numprocs=two'));
  try {
    const bad = await supervisordPrograms(facts.binaries.supervisord, path.join(prefix, 'etc/supervisord.conf'));
    assert.ok(!bad.ok);
    assert.match(bad.message, /'two' in section 'program:engine-che' \(file: '.*etc\/engines\/che\.ini'\)/);
  } finally {
    await writeFile(ini, good);
  }
});

test("RabbitMQ's cuttlefish check accepts rabbitmq.conf and names an unknown key", async () => {
  assert.ok(facts.binaries.erl && facts.rabbitmqHome);
  assert.equal(await checkRabbitmqConf(facts.binaries.erl, facts.rabbitmqHome, path.join(prefix, 'etc/rabbitmq/rabbitmq.conf')), '');
  const broken = await brokenCopy('etc/rabbitmq/rabbitmq.conf', (t) => `${t}\nlisteners.tcp.colour = blue\n`);
  assert.match(await checkRabbitmqConf(facts.binaries.erl, facts.rabbitmqHome, broken), /listeners\.tcp\.colour/);
});

test('mongod YAML: keys mongod needs, and a parse error is reported', () => {
  const good = 'storage:\n  dbPath: "/x"\nsystemLog:\n  destination: file\n  path: "/y"\nnet:\n  bindIp: 127.0.0.1\n  port: 27017\n';
  assert.equal(mongodConfigProblems(good), '');
  assert.match(mongodConfigProblems(good.replace('  port: 27017\n', '')), /net\.port/);
  assert.match(mongodConfigProblems('storage:\n dbPath: [\n'), /not valid YAML/);
});
