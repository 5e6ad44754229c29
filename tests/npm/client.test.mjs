// The official ollama npm client (pinned in package.json) against ollama-sim:
// list, ps, show, generate and chat (streaming and not), embed, pull (streaming and
// not), copy, delete, abort mid-stream, and 404 model errors. Starts its own ollama-sim
// on a free port. With VRAMD_FRONT=1 it also starts vramd in front of it (on the
// simulated NVML) and runs the same cases through vramd's Ollama-compatible API.
// Prints PASS/FAIL per test and "N passed, N failed"; exits non-zero on failure. Node 18
// compatible.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Ollama } from 'ollama';

const buildDir = process.env.VRAMD_BUILD_DIR || '/work/main/build';
const simPath = path.join(buildDir, 'sim', 'ollama-sim');
const front = process.env.VRAMD_FRONT === '1';

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = srv.address().port;
      srv.close(() => resolve(port));
    });
  });
}

function assert(cond, msg) {
  if (!cond) throw new Error('assertion failed: ' + msg);
}

// Waits until url answers 200 and ready(body) holds.
async function waitReady(url, ready = () => true) {
  const deadline = Date.now() + 30000;
  while (Date.now() < deadline) {
    try {
      const r = await fetch(url);
      if (r.ok && ready(await r.text())) return;
    } catch (e) {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('no ready answer from ' + url);
}

// A program under test, its output kept for the report.
function start(name, argv, env) {
  const p = { name, log: '' };
  p.proc = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env } });
  p.proc.stdout.on('data', (d) => { p.log += d; });
  p.proc.stderr.on('data', (d) => { p.log += d; });
  p.exited = new Promise((resolve) => p.proc.on('exit', (code) => resolve(code)));
  return p;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vramd-npm-'));
const simPort = await freePort();
const simArgs = [simPath, '--listen', '127.0.0.1:' + simPort, '--time-scale', '100', '--gpus', '24GiB'];
if (front) simArgs.push('--state', path.join(tmp, 'sim-state'));
const procs = [start('ollama-sim', simArgs, {})];
let host = 'http://127.0.0.1:' + simPort;
if (front) {
  const port = await freePort();
  procs.push(start('vramd', [path.join(buildDir, 'src', 'vramd'), '--listen', '127.0.0.1:' + port,
    '--ollama', host, '--data-dir', path.join(tmp, 'data'),
    '--nvml-lib', path.join(buildDir, 'nvml', 'libnvidia-ml.so.1')],
  { OLLAMA_SIM_STATE: path.join(tmp, 'sim-state') }));
  host = 'http://127.0.0.1:' + port;
}
const ollama = new Ollama({ host });

const tests = [
  ['list', async () => {
    const r = await ollama.list();
    const names = r.models.map((m) => m.name);
    assert(names.includes('llama3.2:1b') && names.length === 10, names.join(','));
    assert(r.models[0].digest.length === 64, 'digest length');
  }],
  ['show', async () => {
    const r = await ollama.show({ model: 'llama3.2:1b' });
    assert(r.details.family === 'llama', 'family');
    assert(r.capabilities.includes('completion'), 'capabilities');
  }],
  ['generate, not streaming', async () => {
    const r = await ollama.generate({ model: 'qwen2.5:0.5b', prompt: 'Why is the sky blue?' });
    assert(r.done === true && r.response.length > 0, JSON.stringify(r));
    assert(r.done_reason === 'stop' && r.eval_count >= 20, 'metrics');
    const again = await ollama.generate({ model: 'qwen2.5:0.5b', prompt: 'Why is the sky blue?' });
    assert(again.response === r.response, 'deterministic');
  }],
  ['generate, streaming', async () => {
    const stream = await ollama.generate({ model: 'qwen2.5:0.5b', prompt: 'hi', stream: true,
      options: { num_predict: 7 } });
    let text = '';
    let last = null;
    for await (const part of stream) {
      text += part.response;
      last = part;
    }
    assert(last.done === true && last.done_reason === 'length', JSON.stringify(last));
    assert(last.eval_count === 7 && text.length > 0, 'tokens');
  }],
  ['chat, not streaming', async () => {
    const r = await ollama.chat({ model: 'llama3.2:1b', messages: [{ role: 'user', content: 'hello' }] });
    assert(r.message.role === 'assistant' && r.message.content.length > 0, JSON.stringify(r));
    assert(r.done === true, 'done');
  }],
  ['chat, streaming', async () => {
    const stream = await ollama.chat({ model: 'llama3.2:1b', stream: true,
      messages: [{ role: 'user', content: 'hello' }] });
    let text = '';
    let n = 0;
    for await (const part of stream) {
      text += part.message.content;
      n++;
    }
    const whole = await ollama.chat({ model: 'llama3.2:1b', messages: [{ role: 'user', content: 'hello' }] });
    assert(n > 2 && text === whole.message.content, 'same text streamed and not');
  }],
  ['ps', async () => {
    const r = await ollama.ps();
    const names = r.models.map((m) => m.name);
    assert(names.includes('llama3.2:1b'), names.join(','));
    const m = r.models.find((x) => x.name === 'llama3.2:1b');
    assert(m.size_vram === m.size && m.size > 0, 'sizes');
  }],
  ['embed', async () => {
    const r = await ollama.embed({ model: 'all-minilm', input: ['a', 'b'] });
    assert(r.embeddings.length === 2 && r.embeddings[0].length === 384, 'shape');
    const norm = r.embeddings[0].reduce((s, x) => s + x * x, 0);
    assert(Math.abs(norm - 1) < 1e-5, 'unit length');
  }],
  ['pull, streaming', async () => {
    const stream = await ollama.pull({ model: 'llama3.2:3b', stream: true });
    const statuses = [];
    let lastLayer = null;
    for await (const part of stream) {
      statuses.push(part.status);
      if (part.digest) lastLayer = part;
    }
    assert(statuses[0] === 'pulling manifest', statuses.join(','));
    assert(statuses[statuses.length - 1] === 'success', statuses.join(','));
    assert(lastLayer && lastLayer.completed === lastLayer.total && lastLayer.total > 0,
      JSON.stringify(lastLayer));
    const names = (await ollama.list()).models.map((m) => m.name);
    assert(names.includes('llama3.2:3b'), names.join(','));
  }],
  ['pull, not streaming', async () => {
    const r = await ollama.pull({ model: 'qwen2.5:3b' });
    assert(r.status === 'success', JSON.stringify(r));
    const s = await ollama.show({ model: 'qwen2.5:3b' });
    assert(s.details.family === 'qwen2', 'family');
    let err = null;
    try {
      await ollama.pull({ model: 'no-such-model' });
    } catch (e) {
      err = e;
    }
    assert(err && err.status_code === 500 &&
      err.error === 'pull model manifest: file does not exist', String(err));
  }],
  ['copy', async () => {
    const r = await ollama.copy({ source: 'llama3.2:3b', destination: 'mine/llama:v1' });
    assert(r.status === 'success', JSON.stringify(r));
    const r2 = await ollama.generate({ model: 'mine/llama:v1', prompt: 'hi', options: { num_predict: 2 } });
    assert(r2.done === true && r2.eval_count === 2, JSON.stringify(r2));
    let err = null;
    try {
      await ollama.copy({ source: 'nope', destination: 'x' });
    } catch (e) {
      err = e;
    }
    assert(err && err.status_code === 404 && err.error === 'model "nope" not found', String(err));
  }],
  ['delete', async () => {
    const r = await ollama.delete({ model: 'mine/llama:v1' });
    assert(r.status === 'success', JSON.stringify(r));
    const names = (await ollama.list()).models.map((m) => m.name);
    assert(!names.includes('mine/llama:v1') && names.includes('llama3.2:3b'), names.join(','));
    let err = null;
    try {
      await ollama.delete({ model: 'mine/llama:v1' });
    } catch (e) {
      err = e;
    }
    assert(err && err.status_code === 404 && err.error === "model 'mine/llama:v1' not found",
      String(err));
  }],
  ['abort mid-stream', async () => {
    // At time scale 100 the whole reply takes a few ms, and a busy machine could read it
    // all before the abort lands: ollama-sim generates this one a thousand times slower.
    const fault = await fetch('http://127.0.0.1:' + simPort + '/sim/fault', {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ type: 'slow', factor: 0.001, count: 1, model: 'qwen2.5:0.5b',
        endpoint: '/api/generate' }) });
    assert(fault.ok, 'slow fault: ' + fault.status);
    const stream = await ollama.generate({ model: 'qwen2.5:0.5b', prompt: 'a long story',
      stream: true, options: { num_predict: 100000 } });
    let n = 0;
    let err = null;
    try {
      for await (const part of stream) {
        if (++n === 3) stream.abort();
      }
    } catch (e) {
      err = e;
    }
    assert(err && err.name === 'AbortError' && n >= 3, 'aborted after ' + n + ': ' + err);
    const r = await ollama.generate({ model: 'qwen2.5:0.5b', prompt: 'hi', options: { num_predict: 2 } });
    assert(r.done === true && r.eval_count === 2, 'served after the abort: ' + JSON.stringify(r));
  }],
  ['404 model error', async () => {
    let err = null;
    try {
      await ollama.generate({ model: 'no-such-model', prompt: 'x' });
    } catch (e) {
      err = e;
    }
    assert(err !== null && err.name === 'ResponseError', String(err));
    assert(err.status_code === 404, 'status ' + err.status_code);
    assert(err.error === "model 'no-such-model' not found", err.error);
    let err2 = null;
    try {
      await ollama.embed({ model: 'nope', input: 'x' });
    } catch (e) {
      err2 = e;
    }
    assert(err2 && err2.status_code === 404 && err2.error.includes('try pulling it first'), String(err2));
  }],
];

if (front) {
  tests.push(['through vramd', async () => {
    // The inference cases above were vramd's jobs (not passed around it).
    const stats = await (await fetch(host + '/api/stats')).json();
    assert(stats.dispatched >= 10 && stats.jobs.total >= 10, JSON.stringify(stats.jobs));
  }]);
}

let passed = 0;
let failed = 0;
try {
  await waitReady('http://127.0.0.1:' + simPort + '/');
  if (front) {
    // vramd knows the ten models and has sampled the GPU.
    await waitReady(host + '/api/models', (t) => JSON.parse(t).models.length === 10);
    await waitReady(host + '/api/stats',
      (t) => (JSON.parse(t).gpus || []).some((g) => g.memory_total_bytes > 0));
  }
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
} catch (e) {
  failed++;
  console.log('FAIL setup: ' + e);
}
for (const p of procs.slice().reverse()) {
  p.proc.kill('SIGTERM');
  const code = await p.exited;
  if (code !== 0 || /Sanitizer|runtime error/.test(p.log)) {
    failed++;
    console.log('FAIL clean shutdown of ' + p.name + ' (exit ' + code + ')');
  }
}
if (failed > 0) {
  for (const p of procs) console.log('---- ' + p.name + ' log ----\n' + p.log.split('\n').slice(-40).join('\n'));
}
fs.rmSync(tmp, { recursive: true, force: true });
console.log(passed + ' passed, ' + failed + ' failed');
process.exit(failed > 0 ? 1 : 0);
