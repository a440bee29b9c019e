// bench_ui.mjs - the dashboard rows of `make bench` (scripts/bench_ui.sh runs it in a netns
// against a release agent whose request log holds $ROWS rows). Prints result lines only.
//   1. load: the page from scratch (navigation, sign-in with the token, the request-log view's
//      first page rendered), and switching to the log view, paging older, a filtered query;
//   2. memory: the Overview's live updates (1 Hz) for $MINUTES minutes while records keep
//      arriving; the JS heap after a forced GC every 30 s, growth per hour from a linear fit.
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';

const E = process.env;
const MIN = Number(E.MINUTES || 5);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (a) => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };
const browser = await chromium.launch({ executablePath: E.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--no-first-run'] });
const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
const page = await context.newPage();
page.setDefaultTimeout(30000);
const loaded = () => page.evaluate(() => document.querySelector('main').dataset.loaded || '');
async function waitLoaded(before) {
  await page.waitForFunction((b) => (document.querySelector('main').dataset.loaded || '') !== b, before);
}

// 1. load
const cold = [], sw = [], pages = [];
for (let i = 0; i < 5; i++) {
  const t0 = performance.now();
  await page.goto(E.BASE + '/ui/');
  await page.fill('#cred', E.TA);
  await page.click('form button[type=submit]');
  await page.waitForSelector('#nav a');
  await page.evaluate(() => { location.hash = '#/logs'; });
  await waitLoaded('');
  cold.push(performance.now() - t0);
  const rows = await page.$$eval('table[aria-label="request log"] tbody tr', (r) => r.length);
  if (rows < 50) throw new Error(`the log view shows ${rows} rows`);
  const t1 = performance.now();
  await page.evaluate(() => { location.hash = '#/overview'; });
  await page.waitForSelector('.kpi');
  const b = await loaded();
  await page.evaluate(() => { location.hash = '#/logs'; });
  await waitLoaded(b);
  sw.push(performance.now() - t1 - 0);
}
for (let i = 0; i < 20; i++) {
  const b = await loaded(), t = performance.now();
  await page.click('.pager button:has-text("Older")');
  await waitLoaded(b);
  pages.push(performance.now() - t);
}
const deep = await page.textContent('.pager .note');
await page.fill('#logfilters input[name=status]', '4xx');
let b = await loaded(), t = performance.now();
await page.click('#logfilters button[type=submit]');
await waitLoaded(b);
const filt = performance.now() - t;
console.log(`  page load, sign-in and the log's first page, ${E.ROWS} rows stored  median ${median(cold).toFixed(0)} ms  (5 runs, max ${Math.max(...cold).toFixed(0)})   [target < 1000 ms]`);
console.log(`  switch to the log view                                   median ${median(sw).toFixed(0)} ms`);
console.log(`  page older with the cursor, 20 pages deep (${deep.trim()})  median ${median(pages).toFixed(0)} ms  max ${Math.max(...pages).toFixed(0)}`);
console.log(`  a filtered query (status=4xx)                            ${filt.toFixed(0)} ms`);

// 2. memory under live updates (the heap after a forced GC: what the tab keeps, not garbage)
const cdp = await context.newCDPSession(page);
await page.evaluate(() => { location.hash = '#/overview'; });
await page.waitForSelector('.kpi');
const samples = [];
const t0 = Date.now(), end = t0 + MIN * 60e3;
const every = Math.min(30e3, (MIN * 60e3) / 6); // at least 6 samples
let next = t0 + every;
while (Date.now() < end) {
  // records keep arriving: the charts, tables and the log poll all have new data each second
  try { execFileSync(E.TOOL, ['put', E.PIN, '30', 'provider=openai', 'model=gpt-4o', 'in=10', 'out=5', 'latency_us=2000', 'user=00000000-0000-0000-0000-000000000001', 'tier=USER', 'id=h']); } catch (_) { /* counted nowhere: a bench */ }
  if (Date.now() >= next) {
    await cdp.send('HeapProfiler.collectGarbage');
    const { usedSize } = await cdp.send('Runtime.getHeapUsage');
    const dom = (await cdp.send('Memory.getDOMCounters')).nodes;
    samples.push({ min: (Date.now() - t0) / 60e3, used: usedSize, dom });
    next += every;
  }
  await sleep(1000);
}
const n = samples.length;
const mx = samples.reduce((s, x) => s + x.min, 0) / n, my = samples.reduce((s, x) => s + x.used, 0) / n;
const slope = samples.reduce((s, x) => s + (x.min - mx) * (x.used - my), 0) / Math.max(1e-9, samples.reduce((s, x) => s + (x.min - mx) ** 2, 0));
const MB = (x) => (x / 1048576).toFixed(2);
console.log(`  JS heap after GC, Overview live at 1 Hz for ${MIN} min: ${MB(samples[0].used)} MB at ${samples[0].min.toFixed(1)} min -> ${MB(samples[n - 1].used)} MB at ${samples[n - 1].min.toFixed(1)} min; DOM nodes ${samples[0].dom} -> ${samples[n - 1].dom}`);
console.log(`  heap growth, linear fit of ${n} samples, per hour${MIN >= 60 ? '' : ` (extrapolated: a ${MIN}-min run, not an hour)`}  ${(slope * 60 / 1048576).toFixed(2)} MB/h`);
await browser.close();
