import { stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { chromium } from 'playwright-core';
import type { StoredAlarm } from '../runtime/alarm/model.js';
import { ALARM_INDEXES } from '../runtime/engines/axe.js';
import { SqliteStore } from '../runtime/store/sqlite.js';
import { hashPassword } from '../runtime/web/auth.js';
import { storedAlarm } from '../test/helpers/alarms.js';
import { writeRuntimePrefix } from '../test/helpers/broker.js';
import { ROOT, removeDir, tempDir, waitFor } from '../test/helpers/index.js';
import { median } from './pipeline.js';
import { writeSection } from './report.js';

/*
 * The console in Debian's Chromium (playwright-core), against the webserver
 * with 10,000 open alarms in the embedded store: the bytes and time of a
 * first load (cold cache, up to the first alarm row), then the list: a page
 * of 100 rows, paging, the last page, and scrolling a page.
 */

const PORT = 5794;
const KEY = 'bench-key-console-0123456789';
const ALARMS = 10_000;
const LOADS = 5;

export async function benchConsole(): Promise<void> {
  const dir = await tempDir('bench-console');
  const store = new SqliteStore(path.join(dir, 'var', 'lib', 'canopsis', 'canopsis.db'));
  const alarms = store.collection<StoredAlarm>('alarms');
  for (const f of ALARM_INDEXES) await alarms.ensureIndex(f);
  const now = Math.floor(Date.now() / 1000);
  for (let i = 0; i < ALARMS; i++)
    await alarms.put(
      `a${i}`,
      storedAlarm({ id: `a${i}`, entity: `r${i}/c${i % 100}`, opened: now - i, state: 1 + (i % 3), output: `check ${i} failed` }),
    );
  await store.close();
  await writeRuntimePrefix(dir, {
    vhost: 'unused',
    engines: '[engine:axe]\nevent_processing=canopsis.axe.process.event_processing\n',
    files: {
      'etc/runtime.conf': `[store]\nbackend = embedded\nfile = ${dir}/var/lib/canopsis/canopsis.db\n`,
      'etc/canopsis-secrets.ini': `[api]\nauthkey = ${KEY}\n`,
      'etc/webserver.conf': `[server]\nbind = 127.0.0.1\nport = ${PORT}\n`,
      'etc/api-users.ini': `[user:bench]\nrole = admin\npassword_hash = ${await hashPassword('bench-pw')}\n`,
    },
  });
  const origin = `http://127.0.0.1:${PORT}`;
  const web = execa(process.execPath, [path.join(ROOT, 'dist', 'runtime', 'cli', 'webserver.js'), '--prefix', dir], { reject: false });
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  try {
    // No broker here (the healthcheck would say 503): the alarms answering is what the console needs.
    await waitFor(
      'the API',
      async () =>
        (await fetch(`${origin}/api/v4/alarms?limit=1`, { headers: { 'x-canopsis-authkey': KEY } }).catch(() => undefined))?.status === 200,
      30_000,
    );
    const { access_token: token } = (await (
      await fetch(`${origin}/api/v4/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'bench', password: 'bench-pw' }),
      })
    ).json()) as { access_token: string };

    // First loads: a new browser context each (no cache), logged in already (the token in the tab's storage).
    const firstRow: number[] = [];
    let bytes = { app: 0, api: 0, files: 0, calls: 0 };
    for (let i = 0; i < LOADS; i++) {
      const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      await ctx.addInitScript((t) => sessionStorage.setItem('canopsis.token', t), token);
      const page = await ctx.newPage();
      const sizes = { app: 0, api: 0, files: 0, calls: 0 };
      // Counted once each request has finished (the stream of live alarms never does, and is not counted).
      page.on('requestfinished', (req) => {
        void req.sizes().then((z) => {
          if (new URL(req.url()).pathname.startsWith('/api/')) {
            sizes.api += z.responseBodySize;
            sizes.calls += 1;
          } else {
            sizes.app += z.responseBodySize;
            sizes.files += 1;
          }
        });
      });
      const t = performance.now();
      await page.goto(`${origin}/alarms`);
      await page.locator('tbody tr[data-alarm]').first().waitFor();
      firstRow.push(performance.now() - t);
      // The stream of live alarms stays open: the page never goes network-idle. The bodies read so far are the load.
      // The page's files and its two API calls (who am I, the first page of alarms).
      await waitFor('the requests finished', async () => sizes.files >= 3 && sizes.calls >= 2, 10_000, 10);
      bytes = { ...sizes };
      await ctx.close();
    }

    // The list with 10,000 open alarms: 100 rows a page.
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    await ctx.addInitScript((t) => sessionStorage.setItem('canopsis.token', t), token);
    const page = await ctx.newPage();
    await page.goto(`${origin}/alarms`);
    await page.locator('tbody tr[data-alarm]').first().waitFor();
    const rows = page.locator('tbody tr[data-alarm]');
    const t = performance.now();
    await page.getByLabel('Alarms per page').selectOption('100');
    await waitFor('100 rows', async () => (await rows.count()) === 100, 30_000, 5);
    const hundred = performance.now() - t;
    /** Milliseconds of each of `n` clicks on Next, up to the new page's first row. */
    const pageThrough = async (n: number) => {
      const out: number[] = [];
      for (let i = 0; i < n; i++) {
        const first = await rows.first().getAttribute('data-alarm');
        const start = performance.now();
        await page.getByRole('button', { name: 'Next' }).click();
        await waitFor('the next page', async () => (await rows.first().getAttribute('data-alarm')) !== first, 30_000, 5);
        out.push(performance.now() - start);
      }
      return out;
    };
    const next = await pageThrough(20);
    // The same without the hide-maintenance pattern: the API pages in the store itself.
    await page.getByLabel('Hide maintenance').uncheck();
    await waitFor(
      'the list reloaded',
      async () => ((await page.locator('.pager span').textContent()) ?? '').startsWith('Page 1 '),
      30_000,
      5,
    );
    const plain = await pageThrough(20);
    const total = Number(/(\d+) alarms/.exec((await page.locator('.pager span').textContent()) ?? '')?.[1] ?? 0);
    const scroll = (await page.evaluate(`new Promise((resolve) => {
      const frames = [];
      let last = performance.now();
      const end = document.documentElement.scrollHeight;
      let y = 0;
      const step = () => {
        const now = performance.now();
        frames.push(now - last);
        last = now;
        y += 200;
        window.scrollTo(0, y);
        if (y < end) requestAnimationFrame(step);
        else resolve({ frames: frames.length, worst: Math.max(...frames.slice(1)), mean: frames.slice(1).reduce((a, b) => a + b, 0) / (frames.length - 1) });
      };
      requestAnimationFrame(step);
    })`)) as { frames: number; worst: number; mean: number };
    await ctx.close();

    const js = (await stat(path.join(ROOT, 'dist', 'console'))).isDirectory();
    const md = `## The console: first load and 10,000 open alarms

Measured ${new Date().toISOString().slice(0, 10)} with \`npm run bench console\` (bench/console.ts) on ${os.cpus().length} cores, Node ${process.versions.node}, Debian's Chromium driven by playwright-core, the webserver over plain HTTP on 127.0.0.1 with ${ALARMS.toLocaleString('en')} open alarms in the embedded store${js ? '' : ' (no console built!)'}.

| figure | value |
| --- | ---: |
| first load, app files (${bytes.files} files: HTML, JS, CSS, icon; not compressed) | ${(bytes.app / 1024).toFixed(0)} KiB |
| first load, API answers up to the list (account, alarms page of 20) | ${(bytes.api / 1024).toFixed(0)} KiB |
| first load to the first alarm row, cold cache, median of ${LOADS} | ${median(firstRow).toFixed(0)} ms (${firstRow.map((x) => x.toFixed(0)).join(', ')}) |
| 20 rows -> 100 rows a page | ${hundred.toFixed(0)} ms |
| next page of 100 (of ${total.toLocaleString('en')} alarms), "hide maintenance" on (the default), median of 20 | ${median(next).toFixed(0)} ms (max ${Math.max(...next).toFixed(0)}) |
| next page of 100, "hide maintenance" off, median of 20 | ${median(plain).toFixed(0)} ms (max ${Math.max(...plain).toFixed(0)}) |
| scrolling a page of 100 rows, 200 px a frame | ${scroll.frames} frames, mean ${scroll.mean.toFixed(1)} ms, worst ${scroll.worst.toFixed(1)} ms |

The list shows a page at a time, as Canopsis' does: what 10,000 alarms cost is the API's page query, not the browser's rendering. "Hide maintenance" sends a \`pbehavior_pattern\` (canonical type active) that the API turns into a store filter (no pbehavior, or an active one), so the store pages it; a pattern it cannot say that way (a \`neq\`, several conditions in a group) is matched on every alarm the query finds, before paging. Issue 18 is about the API's speed.`;
    console.log(md);
    await writeSection('console', md);
  } finally {
    await browser.close();
    web.kill('SIGTERM');
    await web;
    await removeDir(dir);
  }
}
