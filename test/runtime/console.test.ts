import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import path from 'node:path';
import { after, before, test } from 'node:test';
import amqp from 'amqplib';
import { execa } from 'execa';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { METRICS, type MetricSample } from '../../runtime/engines/perfdata.js';
import { SqliteStore } from '../../runtime/store/sqlite.js';
import { authenticate, hashPassword, readCredentials } from '../../runtime/web/auth.js';
import { type ApiStack, startApiStack } from '../helpers/api-stack.js';
import { ROOT, removeDir, tempDir, waitFor } from '../helpers/index.js';

/*
 * The alarm console in a real browser: Debian's Chromium driven by
 * playwright-core, against the running stack (cleaner -> che -> axe, the
 * webserver serving the built console from dist/console). Screenshots of
 * the main pages go to docs/console/.
 */

const KEY = 'test-admin-key-console-0123456';
const PORT = 5801;
const CHROMIUM = '/usr/bin/chromium';
const SHOTS = path.join(ROOT, 'docs', 'console');
let stack: ApiStack;
let browser: Browser;
let origin: string;

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: npm test installs it (deps --for-tests installs Debian's chromium)`);
  stack = await startApiStack({
    tag: 'console',
    port: PORT,
    authkey: KEY,
    users: `[user:alice]\nrole = admin\npassword_hash = ${await hashPassword('alice-pw')}\n\n[user:rita]\nrole = readonly\npassword_hash = ${await hashPassword('rita-pw')}\n`,
    runtime: '[dispatchers]\nevent_dispatchers =\n\n[alarms]\nresolve_delay = 100000\n',
  });
  origin = `https://127.0.0.1:${PORT}`;
  // As root (the README's way), Chromium needs --no-sandbox.
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
});

after(async () => {
  // A wedged browser must not keep the run from ending: the stack is stopped either way.
  await Promise.race([browser?.close(), new Promise((resolve) => setTimeout(resolve, 30_000).unref())]);
  await stack?.stop();
});

/** What the browser refused under the console's Content-Security-Policy, on every page the tests open. */
const refused: string[] = [];
const watchCsp = (page: Page) =>
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) refused.push(m.text());
  });

async function loggedIn(
  user: string,
  password: string,
  viewport = { width: 1280, height: 800 },
): Promise<{ ctx: BrowserContext; page: Page }> {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport });
  // A loaded CI machine (another end-to-end file beside this one) makes pages slow: each wait gets a minute.
  ctx.setDefaultTimeout(60_000);
  const page = await ctx.newPage();
  watchCsp(page);
  await page.goto(`${origin}/`);
  await page.getByLabel('Username').fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(/\/alarms/);
  return { ctx, page };
}

const sendEvent = (component: string, resource: string, state: number) =>
  execa(process.execPath, [
    path.join(ROOT, 'dist', 'runtime', 'cli', 'send-event.js'),
    '--prefix',
    stack.dir,
    '--connector',
    'nagios',
    '--connector-name',
    'n1',
    '--component',
    component,
    '--resource',
    resource,
    '--state',
    String(state),
    '--output',
    `${resource} on ${component} is not well`,
  ]);

test('the console: a wrong password is refused; log in, an alarm appears live after send-event, ack it from the page', async () => {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
  // A loaded CI machine (another end-to-end file beside this one) makes pages slow: each wait gets a minute.
  ctx.setDefaultTimeout(60_000);
  const page = await ctx.newPage();
  watchCsp(page);
  const response = await page.goto(`${origin}/alarms`);
  assert.equal(response?.status(), 200, 'a reload on a page of the app serves the app');
  assert.match(response?.headers()['content-security-policy'] ?? '', /default-src 'self'/);
  await page.waitForURL(/\/login/);
  await page.getByLabel('Username').fill('alice');
  await page.getByLabel('Password').fill('wrong');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('alert').filter({ hasText: 'Wrong username or password.' }).waitFor();
  await page.screenshot({ path: path.join(SHOTS, 'login.png') });
  await page.getByLabel('Password').fill('alice-pw');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(/\/alarms/);
  await page.locator('[data-test=live].stream').waitFor({ timeout: 60_000 });

  // Sent while the page is open: it shows without a reload.
  await sendEvent('web-console', 'disk', 3);
  await sendEvent('db-console', 'cpu', 2);
  const row = page.locator('tr', { hasText: 'web-console' });
  await row.waitFor({ timeout: 60_000 });
  assert.match((await row.locator('.state').textContent()) ?? '', /critical/);
  await page.locator('tr', { hasText: 'db-console' }).waitFor();
  await page.screenshot({ path: path.join(SHOTS, 'alarms.png') });

  await row.getByRole('checkbox').check();
  await page.locator('[data-action=ack]').click();
  await page.getByRole('status').filter({ hasText: 'ack: done on 1 alarm' }).waitFor();
  const id = await row.getAttribute('data-alarm');
  const acked = await waitFor('the ack, read through the API', async () => {
    const a = (await stack.call('GET', `/api/v4/alarms/${id}`)).body;
    return a.v.ack ? a : undefined;
  });
  assert.equal(acked.v.ack.a, 'alice', 'acked as the user logged in');
  // The page hears of it too: the ack badge, then the timeline of the alarm.
  await row.locator('[data-icon=ack]').waitFor({ timeout: 60_000 });
  await row.getByRole('button', { name: 'Details' }).click();
  await page.locator('.timeline [data-step=ack]').waitFor();
  await page.screenshot({ path: path.join(SHOTS, 'alarm-detail.png') });

  // Search by the API's own parameter.
  await page.getByRole('button', { name: 'Close' }).click();
  await page.getByLabel('Search').fill('db-console');
  await waitFor('the list narrowed', async () => (await page.locator('tbody tr[data-alarm]').count()) === 1);

  // The same page on a phone.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.getByLabel('Search').fill('');
  await page.locator('tr', { hasText: 'web-console' }).waitFor();
  const overflow = async (what: string) => {
    const px = (await page.evaluate('document.documentElement.scrollWidth - window.innerWidth')) as number;
    assert.ok(px <= 0, `${what}: the page is ${px} px wider than a 390 px screen`);
  };
  await overflow('alarms');
  await page.screenshot({ path: path.join(SHOTS, 'alarms-phone.png') });
  for (const name of ['Entities', 'Maintenance', 'Scenarios', 'Platform']) {
    await page.getByRole('link', { name }).click();
    await page.waitForURL(new RegExp(`/${name.toLowerCase()}`));
    await page.locator('main section').waitFor();
    await overflow(name);
  }
  assert.deepEqual(refused, [], 'nothing refused by the Content-Security-Policy');
  await ctx.close();
});

test('the platform page: queues, a dead letter with its reason, replayed from the page', async () => {
  // An event the cleaner refuses: dead-lettered with the reason.
  const conn = await amqp.connect(stack.vhostUrl);
  const ch = await conn.createConfirmChannel();
  ch.publish('canopsis.events', 'x', Buffer.from('{"event_type": 42, "connector": "broken"}'), { persistent: true });
  await ch.waitForConfirms();
  await conn.close();
  await waitFor(
    'the dead letter',
    async () =>
      (await stack.call('GET', '/api/v4/platform')).body.queues.find((q: { engine: string }) => q.engine === 'cleaner')?.dead === 1,
  );

  // What the engines' self-stats perf events leave in `metrics` through perfdata (not in this chain): the last hour.
  const store = new SqliteStore(path.join(stack.dir, 'var', 'lib', 'canopsis', 'canopsis.db'));
  const now = Math.floor(Date.now() / 1000);
  try {
    for (let m = 50; m >= 0; m -= 5)
      for (const [resource, value] of [
        ['Engine_axe.0', 40 + m],
        ['Engine_axe.1', 10],
        ['Engine_che', 30],
      ] as const)
        await store.collection<MetricSample>(METRICS).put(`${resource}|${m}`, {
          entity: `${resource}/host`,
          component: 'host',
          resource,
          metric: 'cps_evt_per_sec',
          value,
          type: 'GAUGE',
          timestamp: now - m * 60,
        });
  } finally {
    await store.close();
  }
  const rates = (await stack.call('GET', '/api/v4/platform/rates')).body;
  assert.deepEqual(Object.keys(rates.engines).sort(), ['axe', 'che']);
  assert.equal(rates.engines.axe.at(-1)[1], 50, "axe's two processes added up");

  const { ctx, page } = await loggedIn('alice', 'alice-pw');
  await page.getByRole('link', { name: 'Platform' }).click();
  await page.locator('.chart polyline').first().waitFor();
  assert.equal(await page.locator('.chart polyline').count(), 2, 'one line per engine');
  await page.locator('[data-service=engine-axe] .dot.up').waitFor();
  await page.locator('[data-letters=cleaner]').click();
  const reason = page.locator('.letters li').first();
  await reason.waitFor();
  assert.match((await reason.textContent()) ?? '', /event_type/);
  await page.screenshot({ path: path.join(SHOTS, 'platform.png'), fullPage: true });
  page.once('dialog', (d) => void d.accept());
  await reason.getByRole('button', { name: 'Replay' }).click();
  await page.getByRole('status').filter({ hasText: 'cleaner: replayed 1' }).waitFor();
  // Still malformed: the cleaner refuses it again, and it is back among the dead letters, replayed once.
  await waitFor(
    'the replayed letter refused again',
    async () => (await stack.call('GET', '/api/v4/platform/dead-letters/cleaner')).body.data.length === 1,
  );
  await ctx.close();
});

test('maintenance and scenarios pages: a weekly window made from the form, a scenario disabled from the list', async () => {
  const scenario = await stack.call('POST', '/api/v4/scenarios', {
    name: 'ack web',
    enabled: true,
    triggers: ['create'],
    actions: [
      {
        type: 'ack',
        parameters: {},
        entity_pattern: [[{ field: 'component', cond: { type: 'eq', value: 'nowhere' } }]],
        drop_scenario_if_not_matched: false,
        emit_trigger: false,
      },
    ],
  });
  assert.equal(scenario.status, 201, JSON.stringify(scenario.body));
  const { ctx, page } = await loggedIn('alice', 'alice-pw');
  await page.getByRole('link', { name: 'Maintenance' }).click();
  await page.getByLabel('Name', { exact: true }).fill('web patching');
  await page.getByPlaceholder('web1').fill('web-console');
  await page.getByLabel('Lasts (hours)').fill('3');
  await page.getByLabel('Repeats').selectOption('WEEKLY');
  await page.getByLabel('TU', { exact: true }).check();
  await page.getByLabel('TH', { exact: true }).check();
  await page.getByRole('button', { name: 'Create' }).click();
  await page.locator('[data-pbehavior="web patching"]').waitFor();
  await page.screenshot({ path: path.join(SHOTS, 'maintenance.png') });
  const made = (await stack.call('GET', '/api/v4/pbehaviors?search=web%20patching')).body.data[0];
  assert.equal(made.rrule, 'FREQ=WEEKLY;BYDAY=TU,TH');
  assert.equal(made.tstop - made.tstart, 3 * 3600);
  assert.deepEqual(made.entity_pattern, [[{ field: 'component', cond: { type: 'eq', value: 'web-console' } }]]);
  assert.equal(made.type._id, 'default-maintenance');

  await page.getByRole('link', { name: 'Scenarios' }).click();
  await page.locator('[data-scenario="ack web"]').getByRole('button', { name: 'Disable' }).click();
  await page.locator('[data-scenario="ack web"]').getByRole('button', { name: 'Enable' }).waitFor();
  assert.equal((await stack.call('GET', `/api/v4/scenarios/${scenario.body._id}`)).body.enabled, false);
  assert.equal((await stack.call('DELETE', `/api/v4/pbehaviors/${made._id}`)).status, 204);
  await ctx.close();
});

test('a read-only user sees the alarms and every action disabled, saying why', async () => {
  await sendEvent('ro-console', 'mem', 2);
  const { ctx, page } = await loggedIn('rita', 'rita-pw');
  await page.locator('tr', { hasText: 'ro-console' }).waitFor({ timeout: 60_000 });
  await page.locator('tr', { hasText: 'ro-console' }).getByRole('checkbox').check();
  for (const action of ['ack', 'ackremove', 'cancel', 'snooze', 'comment', 'assocticket', 'changestate']) {
    const b = page.locator(`[data-action=${action}]`);
    assert.equal(await b.isDisabled(), true, `${action} is disabled`);
    assert.match((await b.getAttribute('title')) ?? '', /rita is read-only/);
  }
  assert.match((await page.locator('[data-test=readonly-why]').textContent()) ?? '', /read-only/);
  await page.getByRole('link', { name: 'Maintenance' }).click();
  await page.getByRole('button', { name: 'Create' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Create' }).isDisabled(), true);
  await page.screenshot({ path: path.join(SHOTS, 'maintenance-readonly.png') });
  // And the API refuses it anyway.
  const token = await page.evaluate(() => sessionStorage.getItem('canopsis.token'));
  const r = await page.evaluate(
    async (t) =>
      (
        await fetch('/api/v4/bulk/alarms/ack', {
          method: 'PUT',
          headers: { authorization: `Bearer ${t}`, 'content-type': 'application/json' },
          body: '[]',
        })
      ).status,
    token,
  );
  assert.equal(r, 403);
  await ctx.close();
});

test('a session expires: the page goes back to the login, saying so, and logging in again returns to the page', async () => {
  const short = await startApiStack({
    tag: 'console-ttl',
    port: 5802,
    authkey: KEY,
    users: `[user:alice]\nrole = admin\npassword_hash = ${await hashPassword('alice-pw')}\n`,
    runtime: '[dispatchers]\nevent_dispatchers =\n',
    server: 'session_ttl = 3\n',
  });
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
  // A loaded CI machine (another end-to-end file beside this one) makes pages slow: each wait gets a minute.
  ctx.setDefaultTimeout(60_000);
  try {
    const page = await ctx.newPage();
    await page.goto('https://127.0.0.1:5802/platform');
    await page.getByLabel('Username').fill('alice');
    await page.getByLabel('Password').fill('alice-pw');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForURL(/\/platform/);
    // The token's own expiry (3 s, [server] session_ttl) ends the session without any click.
    await page.getByRole('status').filter({ hasText: 'Your session expired' }).waitFor({ timeout: 60_000 });
    assert.match(page.url(), /\/login\?next=(%2F|\/)platform$/);
    await page.getByLabel('Username').fill('alice');
    await page.getByLabel('Password').fill('alice-pw');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForURL(/\/platform/);
    // A console open on the live alarms does not hold the webserver's stop (its stream is ended first).
    await page.getByRole('link', { name: 'Alarms' }).click();
    await page.locator('[data-test=live].stream').waitFor({ timeout: 60_000 });
    let deadline: NodeJS.Timeout | undefined;
    await Promise.race([
      short.stop(),
      new Promise((_, reject) => {
        deadline = setTimeout(() => reject(new Error('the webserver did not stop within 20 s with a console stream open')), 20_000);
      }),
    ]).finally(() => clearTimeout(deadline));
  } finally {
    await ctx.close();
    await short.stop().catch(() => undefined);
  }
});

test("the console's first admin: user admin with [console] admin_password of the secrets file, unless api-users.ini has its own", async () => {
  const dir = await tempDir('console-admin');
  try {
    const secrets = path.join(dir, 'secrets.ini');
    const users = path.join(dir, 'api-users.ini');
    await writeFile(secrets, '[api]\nauthkey = k-0123456789abcdef\n\n[console]\nadmin_password = first-admin-pw\n');
    const first = await readCredentials(secrets, users);
    assert.equal(first.users.get('admin')?.role, 'admin');
    assert.deepEqual(await authenticate(first, undefined, `Basic ${Buffer.from('admin:first-admin-pw').toString('base64')}`), {
      name: 'admin',
      role: 'admin',
    });
    await writeFile(users, `[user:admin]\nrole = readonly\npassword_hash = ${await hashPassword('own-pw')}\n`);
    const own = await readCredentials(secrets, users);
    assert.equal(own.users.get('admin')?.role, 'readonly', "the operator's admin wins");
    assert.equal(await authenticate(own, undefined, `Basic ${Buffer.from('admin:first-admin-pw').toString('base64')}`), undefined);
  } finally {
    await removeDir(dir);
  }
});

test('the console being public opens no way around the API authentication', async () => {
  const raw = (target: string, headers: Record<string, string> = {}, method = 'GET', body?: string) =>
    new Promise<{ status: number; headers: Record<string, unknown> }>((resolve, reject) => {
      const r = httpsRequest({ host: '127.0.0.1', port: PORT, path: target, method, headers, rejectUnauthorized: false }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
      });
      r.on('error', reject);
      r.end(body);
    });
  // Percent-encoded and absolute-form targets reach the API's routes: they are authenticated like any.
  for (const target of [
    '/%61pi/v4/alarms',
    '/api/v4/%61larms',
    '/m%65trics',
    `https://127.0.0.1:${PORT}/api/v4/alarms`,
    '/%61pi/v4/stream/alarms',
  ])
    assert.equal((await raw(target)).status, 401, target);
  assert.equal(
    (await raw('/%61pi/v4/platform/dead-letters/cleaner/replay', { 'content-type': 'application/json' }, 'POST', '{}')).status,
    401,
  );
  // A bad token gets no Basic challenge (a browser would pop its own login dialog); no credentials at all does.
  const badToken = await raw('/api/v4/alarms', { authorization: 'Bearer not.a.token' });
  assert.equal(badToken.status, 401);
  assert.equal(badToken.headers['www-authenticate'], undefined);
  assert.match(String((await raw('/api/v4/alarms')).headers['www-authenticate']), /^Basic/);
  // A body a cross-site form could send without a preflight is not parsed.
  const plain = await raw(
    '/api/v4/platform/dead-letters/cleaner/replay',
    { 'content-type': 'text/plain', 'x-canopsis-authkey': KEY },
    'POST',
    'x',
  );
  assert.equal(plain.status, 415);
});
