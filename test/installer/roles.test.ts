import assert from 'node:assert/strict';
import { test } from 'node:test';
import ini from 'ini';
import { SettingsError } from '../../installer/errors.js';
import { prepare } from '../../installer/prepare.js';
import { parseSetOption } from '../../installer/settings/load.js';
import { RENDER_FACTS } from '../helpers/facts.js';

/*
 * Roles: what each host of a site renders, from its canopsis.ini alone.
 * The layout is docs/installer.md's: three broker hosts, a store host,
 * engines and webserver hosts, the same cluster list, password, cookie and
 * store URL on every host.
 */

const facts = RENDER_FACTS;

const NODES = 'canopsis@10.9.0.11,canopsis@10.9.0.12,canopsis@10.9.0.13';
const URL = 'postgresql://canopsis:s3cret-pass@10.9.0.21:5432/canopsis';
const SITE = [
  `rabbitmq.cluster_nodes=${NODES}`,
  'rabbitmq.password=shared-broker-password',
  'rabbitmq.erlang_cookie=ABCDEFGHIJKLMNOPQRSTUVWXYZ',
  'store.backend=postgresql',
];

async function host(sets: string[]) {
  const p = await prepare('/nonexistent/opt/canopsis', facts, [...SITE, ...sets].map(parseSetOption));
  const files = new Map(p.files.map((f) => [f.target, f]));
  const text = (t: string) => {
    const f = files.get(t);
    assert.ok(f, `${t} is rendered`);
    return f.content;
  };
  return { p, files, text };
}

test('a broker host of a three-node cluster: classic config discovery, long names, the cookie, quorum queues, its own node first', async () => {
  const { files, text } = await host([
    'canopsis.roles=broker',
    'rabbitmq.node_name=canopsis@10.9.0.12',
    'rabbitmq.host=10.9.0.12',
    'collectd.enabled=false',
  ]);
  const conf = text('etc/rabbitmq/rabbitmq.conf');
  assert.match(conf, /^cluster_formation\.peer_discovery_backend = classic_config$/m);
  assert.match(conf, /^cluster_formation\.classic_config\.nodes\.1 = canopsis@10\.9\.0\.11$/m);
  assert.match(conf, /^cluster_formation\.classic_config\.nodes\.3 = canopsis@10\.9\.0\.13$/m);
  assert.match(conf, /^listeners\.tcp\.default = 10\.9\.0\.12:5672$/m);
  assert.match(text('etc/rabbitmq/rabbitmq-env.conf'), /^USE_LONGNAME=true$/m);
  const cookie = files.get('etc/rabbitmq/erlang/.erlang.cookie');
  assert.equal(cookie?.content, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'the cookie file holds the cookie alone');
  assert.equal(cookie?.mode, 0o400);
  assert.equal(cookie?.serviceOwned, true, 'Erlang reads a cookie its user owns');
  assert.match(text('etc/supervisord.d/rabbitmq-server.conf'), /HOME="\/nonexistent\/opt\/canopsis\/etc\/rabbitmq\/erlang"/);
  const amqp = ini.parse(text('etc/amqp.conf')).master;
  assert.equal(amqp.host, '10.9.0.12,10.9.0.11,10.9.0.13', 'its own node first, then the others');
  assert.equal(amqp.queue_type, 'quorum');
  // No engines, no webserver, no store here.
  for (const t of ['etc/supervisord.d/amqp2engines.conf', 'etc/supervisord.d/webserver.conf', 'etc/supervisord.d/postgresql.conf'])
    assert.ok(!files.has(t), `${t} is not rendered on a broker host`);
  assert.match(text('etc/hypcontrol.conf'), /BACKEND="rabbitmq-server"\nMIDDLEWARE=""\nFRONTEND=""/);
});

test('the store host: its own PostgreSQL listening on its address, password logins from the site, nothing else', async () => {
  const { files, text } = await host([
    'canopsis.roles=store',
    `store.postgresql_url=${URL}`,
    'store.postgresql_listen=127.0.0.1,10.9.0.21',
    'store.postgresql_clients=10.9.0.0/24',
    'collectd.enabled=false',
  ]);
  const conf = text('etc/postgresql/postgresql.conf');
  assert.match(conf, /^listen_addresses = '127\.0\.0\.1,10\.9\.0\.21'$/m);
  assert.match(conf, /^data_directory = '\/nonexistent\/opt\/canopsis\/var\/lib\/postgresql'$/m);
  // Over TCP, only the store URL's user to its database, from the loopback and the site's network.
  const hba = text('etc/postgresql/pg_hba.conf');
  assert.match(hba, /^host +"canopsis" +"canopsis" +10\.9\.0\.0\/24 +scram-sha-256$/m);
  assert.doesNotMatch(hba, /^host +all/m);
  assert.doesNotMatch(hba, /0\.0\.0\.0\/0/);
  assert.match(text('etc/supervisord.d/postgresql.conf'), /command=\/usr\/lib\/postgresql\/15\/bin\/postgres -D /);
  assert.ok(!files.has('etc/supervisord.d/rabbitmq-server.conf'));
  assert.ok(!files.has('etc/supervisord.d/amqp2engines.conf'));
  assert.equal(ini.parse(text('etc/runtime.conf')).store.url, URL);
});

test('an engines host: the chain, every broker node to fail over to, the shared store; no broker or store of its own', async () => {
  const { files, text } = await host(['canopsis.roles=engines', `store.postgresql_url=${URL}`, 'store.postgresql_mode=remote']);
  const amqp = ini.parse(text('etc/amqp.conf')).master;
  assert.equal(amqp.host, '10.9.0.11,10.9.0.12,10.9.0.13');
  assert.equal(amqp.password, 'shared-broker-password');
  assert.ok(files.has('etc/supervisord.d/amqp2engines.conf'));
  assert.ok(files.has('etc/amqp2engines.conf'));
  for (const t of ['etc/supervisord.d/rabbitmq-server.conf', 'etc/supervisord.d/postgresql.conf', 'etc/supervisord.d/webserver.conf'])
    assert.ok(!files.has(t), `${t} is not rendered on an engines host`);
  const runtime = ini.parse(text('etc/runtime.conf')).store;
  assert.equal(runtime.backend, 'postgresql');
  assert.equal(runtime.url, URL);
  assert.equal(files.get('etc/runtime.conf')?.mode, 0o640, 'the URL holds a password');
});

test('a webserver host reads the chain too (the API lists the engines)', async () => {
  const { files } = await host(['canopsis.roles=webserver', `store.postgresql_url=${URL}`, 'store.postgresql_mode=remote']);
  assert.ok(files.has('etc/supervisord.d/webserver.conf'));
  assert.ok(files.has('etc/amqp2engines.conf'));
  assert.ok(!files.has('etc/supervisord.d/amqp2engines.conf'));
});

test('a store role host with no URL set generates its own on the loopback; the same URL set by --set is kept', async () => {
  const { p } = await host(['canopsis.roles=store,engines,webserver,broker', 'rabbitmq.cluster_nodes=']);
  assert.match(p.secrets.store.postgresql_url ?? '', /^postgresql:\/\/canopsis:[^@]+@127\.0\.0\.1:5432\/canopsis$/);
});

const problemsOf = async (sets: string[]) => {
  try {
    await host(sets);
  } catch (e) {
    if (e instanceof SettingsError) return e.problems.map((x) => `${x.section}.${x.key}: ${x.expected}`).join('\n');
    throw e;
  }
  return '';
};

test('what a site cannot work with is refused, naming the key', async () => {
  assert.match(
    await problemsOf(['canopsis.roles=engines', 'store.backend=embedded']),
    /store\.backend: a networked store \(postgresql or mongodb\) for roles engines/,
  );
  assert.match(
    await problemsOf(['canopsis.roles=engines', 'store.postgresql_mode=remote']),
    /store\.postgresql_url: the store's URL, as the store host's own canopsis-secrets\.ini has it/,
  );
  assert.match(
    await problemsOf(['canopsis.roles=broker', 'rabbitmq.node_name=canopsis@10.9.0.99', 'rabbitmq.host=10.9.0.99']),
    /rabbitmq\.node_name: this broker host's own node, one of cluster_nodes/,
  );
  assert.match(
    await problemsOf(['canopsis.roles=broker', 'rabbitmq.node_name=canopsis@10.9.0.11']),
    /rabbitmq\.host: an address the other hosts reach/,
  );
  assert.match(
    await problemsOf([
      'canopsis.roles=broker',
      'rabbitmq.cluster_nodes=canopsis@10.9.0.11,canopsis@10.9.0.12',
      'rabbitmq.host=0.0.0.0',
      'rabbitmq.node_name=canopsis@10.9.0.11',
    ]),
    /rabbitmq\.cluster_nodes: one node, or three or more/,
  );
  assert.match(await problemsOf(['canopsis.roles=broker,cook']), /canopsis\.roles: expected roles among broker, store, engines, webserver/);
  assert.match(
    await problemsOf(['canopsis.roles=store', `store.postgresql_url=${URL}`]),
    /store\.postgresql_listen: this host's address as the engines hosts reach it/,
  );
  assert.match(
    await problemsOf(['canopsis.roles=store', `store.postgresql_url=${URL}`, 'store.postgresql_listen=127.0.0.1,10.9.0.21']),
    /store\.postgresql_clients: the networks of the engines and webserver hosts/,
  );
  assert.match(
    await problemsOf([
      'canopsis.roles=engines',
      'store.postgresql_mode=remote',
      'store.postgresql_url=postgresql://can"opsis:pw@10.9.0.21/canopsis',
    ]),
    /store\.postgresql_url: a URL such as/,
  );
  assert.match(
    await problemsOf([
      'canopsis.roles=broker',
      'rabbitmq.node_name=canopsis@10.9.0.11',
      'rabbitmq.host=10.9.0.11',
      'rabbitmq.erlang_cookie=short',
    ]),
    /rabbitmq\.erlang_cookie: 20 to 255 letters and digits/,
  );
});

test('preflight names the broker nodes and the store an engines host cannot reach', async () => {
  const { remoteChecks } = await import('../../installer/preflight/remote.js');
  const { p } = await host([
    'rabbitmq.cluster_nodes=canopsis@127.0.0.2,canopsis@127.0.0.3,canopsis@127.0.0.4',
    'rabbitmq.port=6019',
    'canopsis.roles=engines',
    'store.postgresql_mode=remote',
    'store.postgresql_url=postgresql://canopsis:pw@127.0.0.1:6018/canopsis',
  ]);
  const failures = (await remoteChecks(p)).map((f) => f.found);
  assert.equal(failures.length, 2, failures.join('\n'));
  assert.match(
    failures[0]!,
    /no broker node answers: 127\.0\.0\.2:6019 \(ECONNREFUSED\), 127\.0\.0\.3:6019 \(ECONNREFUSED\), 127\.0\.0\.4:6019/,
  );
  assert.match(failures[1]!, /the store \(postgresql\) at 127\.0\.0\.1:6018 does not answer \(ECONNREFUSED\)/);
});
