import assert from 'node:assert/strict';
import { chown, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { rootCertificates } from 'node:tls';
import { execa, type ResultPromise } from 'execa';
import { Agent, fetch as undiciFetch } from 'undici';
import { READY } from '../../installer/services/index.js';
import { readWebserverConf } from '../../runtime/config/files.js';
import { type ApiClient, apiClient, trustAgent } from '../../runtime/web/client.js';
import { apiFetch, selfSignedCert } from '../helpers/api.js';
import {
  type EngineProcess,
  freshVhost,
  startEngine,
  stopEngine,
  type Vhost,
  whenConsuming,
  writeRuntimePrefix,
} from '../helpers/broker.js';
import { ROOT, removeDir, run, tempDir, waitFor } from '../helpers/index.js';

/*
 * The API at the edge, on the real bin/webserver over real HTTPS with an
 * openssl self-signed certificate: what a client must trust, failed logins
 * rate-limited, repeated query parameters refused, /metrics labels that
 * never carry a URL, and accounts made by bin/api-users.
 */

const PORT = 5940;
const PLAIN_PORT = 5941;
const NAMED_PORT = 5942;
const KEY = 'edge-admin-key-0123456789abcdef';
const WEBSERVER = path.join(ROOT, 'dist', 'runtime', 'cli', 'webserver.js');
const API_USERS = path.join(ROOT, 'dist', 'runtime', 'cli', 'api-users.js');
const SEND_EVENT = path.join(ROOT, 'dist', 'runtime', 'cli', 'send-event.js');
// cleaner runs, che has no process: one engine ready, one not.
const ENGINES = `
[engine:cleaner]
event_processing=canopsis.cleaner.process.event_processing
next=che
exchange=canopsis.events

[engine:che]
event_processing=canopsis.che.process.event_processing
`;

let vhost: Vhost;
let dir: string;
let engine: EngineProcess;
let client: ApiClient;
const servers: Array<ResultPromise<{ reject: false; all: true }>> = [];

const secrets = `[rabbitmq]\npassword = guest\n\n[api]\nauthkey = ${KEY}\n`;

async function prefixWith(p: string, webserverConf: string): Promise<void> {
  await writeRuntimePrefix(p, {
    vhost: vhost.name,
    engines: ENGINES,
    files: { 'etc/canopsis-secrets.ini': secrets, 'etc/webserver.conf': webserverConf },
  });
}

function startWebserver(prefix: string): ResultPromise<{ reject: false; all: true }> {
  const p = execa(process.execPath, [WEBSERVER, '--prefix', prefix], { reject: false, all: true });
  servers.push(p);
  return p;
}

const basic = (user: string, password: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });

before(async () => {
  vhost = await freshVhost('edge');
  dir = await tempDir('edge');
  await prefixWith(
    dir,
    `[server]\nbind = 127.0.0.1\nport = ${PORT}\ntls = true\ntls_cert = ${dir}/certs/webserver.crt\ntls_key = ${dir}/certs/webserver.key\n`,
  );
  await selfSignedCert(path.join(dir, 'certs'));
  // The secrets file's group is the service group the users file must share.
  await chown(path.join(dir, 'etc', 'canopsis-secrets.ini'), 0, 65534);
  const added = await execa(process.execPath, [API_USERS, '--prefix', dir, 'add', 'viewer', '--password-stdin'], {
    input: 'viewer-pass-123\n',
    reject: false,
    all: true,
  });
  assert.equal(added.exitCode, 0, added.all);
  engine = startEngine(dir, 'cleaner');
  await whenConsuming(engine);
  startWebserver(dir);
  client = await apiClient(dir);
  await waitFor('the API over HTTPS', async () => (await client.fetch('/healthcheck').catch(() => undefined))?.status === 200, 30_000);
});

after(async () => {
  await client?.close();
  for (const s of servers) s.kill('SIGTERM');
  await Promise.all(servers);
  if (engine) await stopEngine(engine);
  await vhost?.remove();
  if (dir) await removeDir(dir);
});

test('the API answers over HTTPS to a client trusting the configured certificate; without it, or with another certificate, or over plain HTTP, it is refused', async () => {
  assert.equal(client.base, `https://127.0.0.1:${PORT}/api/v4`);
  const ok = await client.fetch('/alarms', { headers: { 'x-canopsis-authkey': KEY } });
  assert.equal(ok.status, 200);

  const plain = await fetch(`${client.base}/healthcheck`).then(
    () => undefined,
    (e: Error & { cause?: { code?: string } }) => e.cause?.code,
  );
  assert.match(String(plain), /SELF_SIGNED|UNABLE_TO_VERIFY/, "Node's fetch with the system CAs only refuses the certificate");

  const other = await selfSignedCert(path.join(dir, 'other'));
  const stranger = trustAgent(await readFile(other.cert, 'utf8'));
  try {
    const refused = await undiciFetch(`${client.base}/healthcheck`, { dispatcher: stranger }).then(
      () => undefined,
      (e: Error & { cause?: { code?: string } }) => e.cause?.code,
    );
    assert.match(
      String(refused),
      /SELF_SIGNED|UNABLE_TO_VERIFY|CERT_SIGNATURE/,
      'a certificate of the same names but another key is not trusted',
    );
  } finally {
    await stranger.close();
  }

  const http = await fetch(`http://127.0.0.1:${PORT}/api/v4/healthcheck`).then(
    (r) => r.status,
    () => 'refused',
  );
  assert.equal(http, 'refused', 'no plain HTTP on the HTTPS port');
});

test("apiFetch (the tests' helper) calls the prefix's API with its key over HTTPS", async () => {
  const r = await apiFetch(dir, '/entities');
  assert.equal(r.status, 200);
  assert.deepEqual(((await r.json()) as { data: unknown[] }).data, []);
});

test("send-event --api and hypcontrol's webserver readiness go over HTTPS trusting the configured certificate, and refuse another", async () => {
  const sent = await run(process.execPath, [
    SEND_EVENT,
    '--prefix',
    dir,
    '--api',
    '--component',
    'edge-host',
    '--state',
    '1',
    '--output',
    'over https',
  ]);
  assert.equal(sent.exitCode, 0, sent.all);
  assert.match(sent.stdout, /^sent cli\.send-event\.check\.component\.edge-host$/m);
  assert.equal(await READY.webserver!(dir), undefined);

  // The same server, but a prefix whose tls_cert is another certificate: our tools refuse it.
  const wrong = path.join(dir, 'wrong-ca');
  const other = await selfSignedCert(path.join(wrong, 'certs'));
  await prefixWith(wrong, `[server]\nbind = 127.0.0.1\nport = ${PORT}\ntls = true\ntls_cert = ${other.cert}\ntls_key = ${other.key}\n`);
  const refused = await run(process.execPath, [SEND_EVENT, '--prefix', wrong, '--api', '--component', 'edge-host', '--state', '1']);
  assert.equal(refused.exitCode, 1);
  assert.match(
    refused.stderr,
    new RegExp(`send-event: https://127\\.0\\.0\\.1:${PORT}/api/v4/event: fetch failed: self[- ]signed certificate`),
  );
  assert.match(
    String(await READY.webserver!(wrong)),
    /healthcheck at https:\/\/127\.0\.0\.1:\d+\/api\/v4\/healthcheck unreachable: fetch failed: self[- ]signed certificate/,
  );
});

test('a repeated query parameter is a 400 naming it, on every route', async () => {
  const get = async (url: string) => {
    const r = await client.fetch(url, { headers: { 'x-canopsis-authkey': KEY } });
    return { status: r.status, error: ((await r.json()) as { error: string }).error };
  };
  for (const [url, name] of [
    ['/alarms?limit=1&limit=2', 'limit'],
    ['/alarms?sort=asc&sort=desc', 'sort'],
    ['/alarms?entity=a&entity=b', 'entity'],
    ['/entities?page=a&page=b', 'page'],
    ['/alarms/x/ack?comment=a&comment=b', 'comment'],
    [`${client.origin}/nope?x=1&x=2`, 'x'],
  ] as const) {
    const r = await get(url);
    assert.equal(r.status, 400, `${url}: ${r.error}`);
    assert.match(r.error, new RegExp(`query parameter ${name} given more than once`), url);
  }
});

test('a body nested too deep to be an event is a 400 saying so, never a 500; a plain event still goes through', async () => {
  const post = (body: string) =>
    client.fetch('/event', { method: 'POST', headers: { 'x-canopsis-authkey': KEY, 'content-type': 'application/json' }, body });
  const deep = `{"connector":"c","connector_name":"n","event_type":"check","source_type":"component","component":"x","state":1,"extra":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
  const r = await post(deep);
  assert.equal(r.status, 400);
  assert.match(((await r.json()) as { error: string }).error, /body nested too deep: an event has at most 64 levels/);
  const proto = await post('{"__proto__":{"admin":true}}');
  assert.equal(proto.status, 400, "fastify's own checks still apply");
  const ok = await post(
    JSON.stringify({ connector: 'c', connector_name: 'n', event_type: 'check', source_type: 'component', component: 'deep-ok', state: 1 }),
  );
  assert.equal(ok.status, 200, await ok.text());
});

test('/metrics labels requests by route pattern: no URL, no query string, every unknown URL under route="unmatched"; engines ready or not', async () => {
  const metrics = async () => (await client.fetch(`${client.origin}/metrics`, { headers: { 'x-canopsis-authkey': KEY } })).text();
  const unmatched = (text: string) => Number(/canopsis_api_requests_total\{method="GET",route="unmatched"\} (\d+)/.exec(text)?.[1] ?? 0);
  const before = unmatched(await metrics());
  assert.equal((await client.fetch(`${client.origin}/api/nope?authkey=SECRET-IN-URL`)).status, 401);
  assert.equal((await client.fetch(`${client.origin}/api/nope?authkey=${KEY}`)).status, 404);
  // Outside /api, a page of the console: its index.html, public (the console logs in through the API).
  const page = await client.fetch(`${client.origin}/nope/page`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<div id="app">/);
  assert.equal((await client.fetch(`${client.origin}/nope.js`)).status, 404, 'a missing file is a 404, not the app');
  assert.equal(
    (await client.fetch(`${client.origin}/api/v4/no/such/route?q=SECRET-IN-URL`, { headers: { 'x-canopsis-authkey': KEY } })).status,
    404,
  );
  assert.equal((await client.fetch('/alarms/some-alarm-id', { headers: { 'x-canopsis-authkey': KEY } })).status, 404);

  const text = await metrics();
  assert.doesNotMatch(text, /SECRET-IN-URL|nope|no\/such|some-alarm-id/);
  assert.ok(!text.includes(KEY), 'the key never shows');
  assert.equal(unmatched(text), before + 5, 'five unknown URLs, one label');
  assert.match(
    text,
    /canopsis_api_requests_total\{method="GET",route="\/api\/v4\/alarms\/:id"\} 1\n/,
    'a route that answered 404 is labelled by its pattern',
  );
  assert.match(text, /canopsis_engine_ready\{engine="cleaner"\} 1\n/);
  assert.match(text, /canopsis_engine_ready\{engine="che"\} 0\n/);
  assert.match(text, /canopsis_engine_dead_letters\{engine="cleaner"\} 0\n/);
});

test("bin/api-users writes 0640, root and the secrets file's group; its async scrypt user logs in over basic auth", {
  skip: process.getuid?.() !== 0 ? 'needs root to show the ownership' : false,
}, async () => {
  const st = await stat(path.join(dir, 'etc', 'api-users.ini'));
  assert.equal(st.mode & 0o777, 0o640);
  assert.equal(st.uid, 0);
  assert.equal(st.gid, 65534);
  assert.match(await readFile(path.join(dir, 'etc', 'api-users.ini'), 'utf8'), /password_hash = "?scrypt\$16384\$8\$1\$/);
  assert.equal((await client.fetch('/alarms', { headers: basic('viewer', 'viewer-pass-123') })).status, 200);
  assert.equal((await client.fetch('/alarms', { headers: basic('viewer', 'wrong-pass') })).status, 401);
  assert.equal((await client.fetch('/alarms', { headers: basic('nobody', 'viewer-pass-123') })).status, 401);
});

test('failed logins from one address get 429 with Retry-After past 10 a minute; the API key still gets 200; another address is not limited', async () => {
  // The failing client on an address of its own (all of 127/8 is loopback), so the count starts at 0.
  const from = new Agent({
    localAddress: '127.0.0.3',
    connect: { ca: [...rootCertificates, await readFile(path.join(dir, 'certs', 'webserver.crt'), 'utf8')] },
  });
  const call = async (headers: Record<string, string>, url = `${client.base}/alarms`) => {
    const r = await undiciFetch(url, { dispatcher: from, headers });
    await r.arrayBuffer();
    return r;
  };
  try {
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await call({ 'x-canopsis-authkey': `wrong-${i}` })).status);
    assert.deepEqual(statuses, [...Array(10).fill(401), 429, 429]);

    const limited = await call(basic('viewer', 'wrong-pass'));
    assert.equal(limited.status, 429);
    const retryAfter = Number(limited.headers.get('retry-after'));
    assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${limited.headers.get('retry-after')}`);
    assert.match(
      (
        (await undiciFetch(`${client.base}/alarms`, { dispatcher: from, headers: basic('viewer', 'wrong-pass') }).then((r) =>
          r.json(),
        )) as { error: string }
      ).error,
      /too many failed logins from 127\.0\.0\.3: retry in \d+ s/,
    );
    assert.equal((await call(basic('viewer', 'viewer-pass-123'))).status, 429, 'no password is checked for a blocked address');

    assert.equal((await call({ 'x-canopsis-authkey': KEY })).status, 200, 'the right key is not limited');
    assert.equal((await call({}, `${client.base}/healthcheck`)).status, 200, 'public routes are not limited');
  } finally {
    await from.close();
  }
  // 127.0.0.1 has its own count, well under the limit.
  assert.equal((await client.fetch('/alarms', { headers: { 'x-canopsis-authkey': 'wrong' } })).status, 401);
  assert.equal(
    (await client.fetch('/alarms', { headers: basic('viewer', 'viewer-pass-123') })).status,
    process.getuid?.() === 0 ? 200 : 401,
  );
});

test('tls = false serves plain HTTP, and the client follows it', async () => {
  const plainDir = path.join(dir, 'plain');
  await prefixWith(plainDir, `[server]\nbind = 127.0.0.1\nport = ${PLAIN_PORT}\ntls = false\n`);
  const server = startWebserver(plainDir);
  const plain = await apiClient(plainDir);
  try {
    assert.equal(plain.base, `http://127.0.0.1:${PLAIN_PORT}/api/v4`);
    await waitFor(
      'the API over plain HTTP',
      async () => (await plain.fetch('/healthcheck').catch(() => undefined))?.status === 200,
      30_000,
    );
  } finally {
    await plain.close();
    server.kill('SIGTERM');
  }
});

test("a certificate naming another host (the operator's own): our tools still reach the API on 127.0.0.1, as that very certificate is pinned", async () => {
  const named = path.join(dir, 'named');
  const cert = await selfSignedCert(path.join(named, 'certs'), ['DNS:api.example.test'], 'api.example.test');
  await prefixWith(named, `[server]\nbind = 0.0.0.0\nport = ${NAMED_PORT}\ntls = true\ntls_cert = ${cert.cert}\ntls_key = ${cert.key}\n`);
  const server = startWebserver(named);
  const api = await apiClient(named);
  try {
    assert.equal(api.base, `https://127.0.0.1:${NAMED_PORT}/api/v4`);
    await waitFor(
      'the API under another name',
      async () => (await api.fetch('/healthcheck').catch(() => undefined))?.status === 200,
      30_000,
    );
    const res = await apiFetch(named, '/alarms');
    assert.equal(res.status, 200);
    // Trusting the same certificate as a CA only, without the pin, fails on the name: the pin is what lets it through.
    const caOnly = new Agent({ connect: { ca: [...rootCertificates, await readFile(cert.cert, 'utf8')] } });
    try {
      const code = await undiciFetch(`${api.base}/healthcheck`, { dispatcher: caOnly }).then(
        () => undefined,
        (e: Error & { cause?: { code?: string } }) => e.cause?.code,
      );
      assert.equal(code, 'ERR_TLS_CERT_ALTNAME_INVALID');
    } finally {
      await caOnly.close();
    }
  } finally {
    await api.close();
    server.kill('SIGTERM');
  }
});

test('a missing, unreadable or mismatched certificate or key stops the webserver at start, naming the file', async () => {
  const bad = path.join(dir, 'bad');
  const other = await selfSignedCert(path.join(dir, 'other2'));
  const cases: Array<[string, RegExp]> = [
    [
      `tls_cert = ${bad}/missing.crt\ntls_key = ${dir}/certs/webserver.key`,
      new RegExp(`cannot read the TLS certificate ${bad}/missing.crt \\(\\[server\\] tls_cert of ${bad}/etc/webserver.conf\\): ENOENT`),
    ],
    [
      `tls_cert = ${dir}/certs/webserver.crt\ntls_key = ${dir}/etc/amqp.conf`,
      new RegExp(`the TLS key ${dir}/etc/amqp.conf \\(\\[server\\] tls_key of .*\\) is not a PEM key`),
    ],
    [
      `tls_cert = ${dir}/certs/webserver.crt\ntls_key = ${other.key}`,
      new RegExp(`the TLS key ${other.key} does not belong to the certificate ${dir}/certs/webserver.crt`),
    ],
    ['', new RegExp(`cannot read the TLS certificate ${bad}/etc/ssl/webserver.crt`)],
  ];
  for (const [lines, message] of cases) {
    await prefixWith(bad, `[server]\nbind = 127.0.0.1\nport = ${PLAIN_PORT}\ntls = true\n${lines}\n`);
    const r = await run(process.execPath, [WEBSERVER, '--prefix', bad], { timeout: 30_000 });
    assert.equal(r.exitCode, 2, r.all);
    assert.match(r.stderr, message);
  }
});

test('webserver.conf: tls must be true or false, named with its file', async () => {
  const p = path.join(dir, 'conf');
  await prefixWith(p, '[server]\nport = 1\ntls = yes\n');
  await assert.rejects(readWebserverConf(p), new RegExp(`${p}/etc/webserver.conf: \\[server\\] tls: found "yes", expected true or false`));
});
