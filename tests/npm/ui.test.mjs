// The /ui dashboard in a real browser: Debian's chromium, headless, driven by
// playwright-core (pinned in package.json; it downloads no browser of its own). Run by
// tests/integration/test_vramd_ui.py through run.sh, which starts ollama-sim with two
// GPUs and vramd in front of it. It does not start anything itself.
//
// Environment: VRAMD_URL (the vramd), SIM_URL (its ollama-sim, to set temperatures),
// UI_SCREENSHOT (where to save the screenshot), CHROMIUM (default /usr/bin/chromium),
// UI_MODE: "open" (no API keys: GPUs, the temperature update, queue, admin actions),
// "keys" (API_KEYS_FILE: the page asks for a key; UI_ADMIN_KEY and UI_USER_KEY) or
// "fleet" (node "a" local with one GPU, node "b" with a 16 GiB GPU read from its vramd).
// Prints PASS/FAIL per test and "N passed, N failed"; exits non-zero on failure.
import { chromium } from 'playwright-core';

const base = (process.env.VRAMD_URL || '').replace(/\/+$/, '');
const sim = (process.env.SIM_URL || '').replace(/\/+$/, '');
const mode = process.env.UI_MODE || 'open';
const screenshot = process.env.UI_SCREENSHOT || 'vramd-ui.png';
if (!base || (mode === 'open' && !sim)) {
  console.log('VRAMD_URL and SIM_URL must be set');
  console.log('0 passed, 1 failed');
  process.exit(2);
}

function assert(cond, msg) {
  if (!cond) throw new Error('assertion failed: ' + msg);
}

async function post(url, body) {
  const r = await fetch(url, {
    method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body),
  });
  const data = await r.json().catch(() => null);
  return {status: r.status, data};
}

async function get(path) {
  const r = await fetch(base + path);
  return {status: r.status, data: await r.json().catch(() => null)};
}

async function simGpu(index, fields) {
  const r = await post(`${sim}/sim/gpu/${index}`, fields);
  assert(r.status === 200, `POST /sim/gpu/${index}: ${r.status} ${JSON.stringify(r.data)}`);
}

async function until(what, fn, timeoutMs = 10000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  // As root (the test machines), chromium needs --no-sandbox.
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
const context = await browser.newContext({viewport: {width: 1400, height: 1000}});
const page = await context.newPage();
const problems = []; // console errors, uncaught exceptions, CSP violations
page.on('console', (m) => {
  if (m.type() === 'error') problems.push('console: ' + m.text());
});
page.on('pageerror', (e) => problems.push('exception: ' + e.message));
page.on('dialog', (d) => d.accept()); // the cancel button asks first

const gpuCard = (i) => page.locator(`[data-gpu="${i}"]`);
const temperatureOf = (i) => gpuCard(i).locator('[data-field="temperature"]');

const openTests = [
  ['the page loads and shows both GPUs, the node and the live event stream', async () => {
    const r = await page.goto(base + '/ui', {waitUntil: 'load'});
    assert(r.status() === 200, 'GET /ui ' + r.status());
    await gpuCard(0).waitFor({timeout: 10000});
    await gpuCard(1).waitFor({timeout: 10000});
    assert(await page.locator('[data-gpu]').count() === 2, 'two GPU cards');
    for (const i of [0, 1]) {
      const t = await temperatureOf(i).getAttribute('data-value');
      assert(/^\d+$/.test(t), `GPU ${i} temperature shown (${t})`);
      assert(await gpuCard(i).locator('.membar').count() === 1, `GPU ${i} memory bar`);
      assert(await gpuCard(i).getAttribute('data-state') === 'OPTIMAL', `GPU ${i} OPTIMAL`);
    }
    await page.locator('.card[data-node="node0"]').waitFor({timeout: 5000});
    await page.waitForFunction(() => document.getElementById('conn').dataset.state === 'live',
      null, {timeout: 5000});
    // The history sparkline fills from GET /api/gpu/metrics/history.
    await page.waitForFunction(
      () => Number(document.querySelector('[data-gpu="0"] [data-field="sparkline"]').dataset.samples) >= 2,
      null, {timeout: 5000});
  }],
  ['a temperature raised through ollama-sim shows within 2 s', async () => {
    const before = await temperatureOf(1).getAttribute('data-value');
    assert(before !== '88', 'GPU 1 is not already at 88 C');
    const t0 = Date.now();
    await simGpu(1, {temperature_c: 88});
    await page.waitForFunction(
      () => document.querySelector('[data-gpu="1"] [data-field="temperature"]').dataset.value === '88',
      null, {timeout: 2000});
    console.log(`  GPU 1 showed 88 C ${Date.now() - t0} ms after the sim was told`);
    // Above 85 C the GPU is CRITICAL: its card and the event feed say so.
    await page.waitForFunction(
      () => document.querySelector('[data-gpu="1"]').dataset.state === 'CRITICAL', null,
      {timeout: 5000});
    // CRITICAL pauses dispatch there: no job of any model may start (throttle/status).
    await page.waitForFunction(() => document.querySelector('[data-gpu="1"] [data-field="throttle"]')
      .textContent.includes('max 0 per model'), null, {timeout: 5000});
    const other = await gpuCard(0).locator('[data-field="throttle"]').textContent();
    assert(/max [1-9]\d* per model/.test(other), 'GPU 0 still takes work: ' + other);
    await page.locator('#events li[data-type="state_change"]').first().waitFor({timeout: 5000});
    const text = await page.locator('#events li[data-type="state_change"]').first().textContent();
    assert(text.includes('GPU 1') && text.includes('CRITICAL'), 'state_change event: ' + text);
    assert(await temperatureOf(0).getAttribute('data-value') !== '88', 'GPU 0 unchanged');
  }],
  ['admin actions: force a model to a GPU, then unload it', async () => {
    await simGpu(1, {temperature_c: null});
    await page.waitForFunction(
      () => document.querySelector('[data-gpu="1"]').dataset.state !== 'CRITICAL', null,
      {timeout: 10000});
    await page.locator('#model-actions').waitFor({state: 'visible', timeout: 5000});
    await page.selectOption('#action-model', 'smollm:360m');
    await page.click('#model-actions button[data-op="force_gpu"]');
    const row = page.locator('.card[data-node="node0"] tr[data-model="smollm:360m"]');
    await row.waitFor({timeout: 15000});
    await page.waitForFunction(() => /^GPU \d/.test(document.querySelector(
      '.card[data-node="node0"] tr[data-model="smollm:360m"] [data-field="location"]').textContent),
    null, {timeout: 15000});
    const report = await get('/api/vram_report');
    const m = report.data.nodes[0].models.find((x) => x.model === 'smollm:360m');
    assert(m && m.placement === 'gpu' && m.location === 'gpu', 'vram_report: ' + JSON.stringify(m));
    await page.screenshot({path: screenshot, fullPage: true});
    console.log('  screenshot: ' + screenshot);
    await row.locator('button[data-op="unload"]').click();
    await row.waitFor({state: 'detached', timeout: 15000});
  }],
  ['the queue by priority and model with ETAs, and cancel', async () => {
    // Both GPUs CRITICAL: dispatch pauses, so submitted jobs stay queued.
    await simGpu(0, {temperature_c: 95});
    await simGpu(1, {temperature_c: 95});
    await page.waitForFunction(() => [...document.querySelectorAll('[data-gpu]')]
      .every((g) => g.dataset.state === 'CRITICAL'), null, {timeout: 5000});
    const ids = [];
    for (const priority of ['low', 'low', 'high']) {
      const r = await post(base + '/api/submit',
        {model: 'qwen2.5:0.5b', prompt: 'hello', priority, options: {num_predict: 4}});
      assert(r.status === 202, 'submit: ' + JSON.stringify(r.data));
      ids.push(r.data.job_id);
    }
    for (const id of ids) await page.locator(`#queue tr[data-job="${id}"]`).waitFor({timeout: 5000});
    const low = page.locator('[data-table="by-priority"] tr[data-priority="low"] td').nth(1);
    await until('2 low jobs counted', async () => (await low.textContent()) === '2', 5000);
    await page.locator('[data-table="by-model"] tr[data-model="qwen2.5:0.5b"]').waitFor({timeout: 5000});
    // The high-priority job is first in dispatch order.
    const first = await page.locator('#queue tbody tr').first().getAttribute('data-job');
    assert(first === ids[2], `first queued is the high one (${first})`);
    await page.locator(`#queue tr[data-job="${ids[0]}"] button[data-op="cancel"]`).click();
    await until('job cancelled', async () => (await get('/api/job/' + ids[0])).data.status === 'cancelled');
    await page.locator(`#queue tr[data-job="${ids[0]}"]`).waitFor({state: 'detached', timeout: 5000});
    await simGpu(0, {temperature_c: null});
    await simGpu(1, {temperature_c: null});
    for (const id of ids.slice(1))
      await until(`job ${id} final`, async () =>
        ['complete', 'failed'].includes((await get('/api/job/' + id)).data.status), 60000);
    await page.waitForFunction(() => document.getElementById('queue').textContent === 'The queue is empty.',
      null, {timeout: 5000});
  }],
];

const keyTests = [
  ['without a key the page asks for one, with no error in the console', async () => {
    const r = await page.goto(base + '/ui', {waitUntil: 'load'});
    assert(r.status() === 200, 'GET /ui ' + r.status());
    await page.locator('#key-form').waitFor({state: 'visible', timeout: 5000});
    assert(await page.locator('[data-gpu]').count() === 0, 'no GPU without a key');
  }],
  ['a wrong key is refused', async () => {
    await page.fill('#key-input', 'sk-wrong-0000000000000000');
    await page.click('#key-form button');
    await page.waitForFunction(() => document.getElementById('notice').textContent.includes('refused'),
      null, {timeout: 5000});
    await page.click('#key-forget');
  }],
  ['a user key shows the GPUs but no admin actions', async () => {
    await page.locator('#key-form').waitFor({state: 'visible', timeout: 5000});
    await page.fill('#key-input', process.env.UI_USER_KEY);
    await page.click('#key-form button');
    await gpuCard(1).waitFor({timeout: 10000});
    await page.waitForFunction(() => document.getElementById('conn').dataset.state === 'live',
      null, {timeout: 5000});
    assert(await page.locator('#model-actions').isHidden(), 'no admin actions for a user key');
    assert((await page.locator('#who').textContent()).includes('user'), 'key name shown');
  }],
  ['an admin key shows the admin actions, kept across a reload', async () => {
    await page.click('#key-forget');
    await page.fill('#key-input', process.env.UI_ADMIN_KEY);
    await page.click('#key-form button');
    await page.locator('#model-actions').waitFor({state: 'visible', timeout: 5000});
    await page.reload({waitUntil: 'load'});
    await page.locator('#model-actions').waitFor({state: 'visible', timeout: 5000});
    await gpuCard(0).waitFor({timeout: 10000});
    await page.screenshot({path: screenshot, fullPage: true});
    console.log('  screenshot: ' + screenshot);
  }],
];

const fleetTests = [
  ['a remote node\'s GPUs show in its card, this host\'s as GPU cards', async () => {
    const r = await page.goto(base + '/ui', {waitUntil: 'load'});
    assert(r.status() === 200, 'GET /ui ' + r.status());
    await gpuCard(0).waitFor({timeout: 10000});
    assert(await page.locator('[data-gpu]').count() === 1, 'one local GPU card');
    const remote = page.locator('.card[data-node="b"] [data-node-gpu="0"]');
    await remote.waitFor({timeout: 10000});
    await until('the remote GPU total', async () => (await remote.textContent()).includes('of 16.0 GiB'));
    assert(await page.locator('.card[data-node="a"] [data-node-gpu]').count() === 0,
      'the local node has no GPU line in its card');
    await page.screenshot({path: screenshot, fullPage: true});
    console.log('  screenshot: ' + screenshot);
  }],
];

const tests = [...({keys: keyTests, fleet: fleetTests}[mode] || openTests),
  ['no console error, exception or CSP violation', async () => {
    assert(problems.length === 0, problems.join('\n'));
  }]];

let passed = 0;
let failed = 0;
for (const [name, fn] of tests) {
  try {
    await fn();
    passed++;
    console.log('PASS ' + name);
  } catch (e) {
    failed++;
    console.log('FAIL ' + name + ': ' + (e && e.stack ? e.stack : e));
  }
}
await browser.close();
console.log(passed + ' passed, ' + failed + ' failed');
process.exit(failed > 0 ? 1 : 0);
