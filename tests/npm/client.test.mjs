// The official ollama npm client (pinned in package.json) against ollama-sim:
// list, ps, show, generate and chat (streaming and not), embed, pull (streaming and
// not), copy, delete, and a 404 model error. Starts its own ollama-sim on a free port.
// Prints PASS/FAIL per test and "N passed, N failed"; exits non-zero on failure. Node 18
// compatible.
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { Ollama } from 'ollama';

const buildDir = process.env.VRAMD_BUILD_DIR || '/work/main/build';
const simPath = path.join(buildDir, 'sim', 'ollama-sim');

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

async function waitReady(url) {
  const deadline = Date.now() + 20000;
  while (Date.now() < deadline) {
    try {
      const r = await fetch(url);
      if (r.ok) return;
    } catch (e) {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('ollama-sim did not start at ' + url);
}

const port = await freePort();
let log = '';
const sim = spawn(simPath, ['--listen', '127.0.0.1:' + port, '--time-scale', '100', '--gpus', '24GiB'],
  { stdio: ['ignore', 'pipe', 'pipe'] });
sim.stdout.on('data', (d) => { log += d; });
sim.stderr.on('data', (d) => { log += d; });
const host = 'http://127.0.0.1:' + port;
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

let passed = 0;
let failed = 0;
try {
  await waitReady(host + '/');
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
const exited = new Promise((resolve) => sim.on('exit', (code) => resolve(code)));
sim.kill('SIGTERM');
const code = await exited;
if (code !== 0 || /Sanitizer|runtime error/.test(log)) {
  failed++;
  console.log('FAIL clean shutdown (exit ' + code + ')');
}
if (failed > 0) console.log('---- ollama-sim log ----\n' + log.split('\n').slice(-40).join('\n'));
console.log(passed + ' passed, ' + failed + ' failed');
process.exit(failed > 0 ? 1 : 0);
