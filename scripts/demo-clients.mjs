// The demo's programs (scripts/demo.sh): four programs that share one GPU machine, written
// with the official `ollama` and `openai` npm clients (pinned in tests/npm/package.json,
// used unchanged), each configured only with a base URL and a default header
// X-Vramd-Priority (which Ollama ignores). The same seed gives the same requests, so a run
// through vramd and a run straight to Ollama send the same work.
//
//   node scripts/demo-clients.mjs describe [--seed N]
//   node scripts/demo-clients.mjs run --url URL [--seed N] [--scale S] [--sim URL[,URL]]
//        [--vramd] [--no-v1] > run.json
//   node scripts/demo-clients.mjs compare straight.json vramd.json
//
// describe: the workload in words. run: plays the workload against URL and prints one JSON
// object: every request with its program, client, priority, model, start, latency and, when
// streamed, time to first token, ok or its error; times are in seconds of the simulated
// world (wall seconds times S, ollama-sim's --time-scale, so they read as real-world
// seconds). --sim: ollama-sim's URL (or one per GPU, in GPU order, when each server has one
// GPU), for the notebook below and for its counters (GET /sim/state, read after the run).
// --vramd: URL is a vramd; its GET /api/stats is read after the run. --no-v1: the server
// has no OpenAI API (ollama-sim): the programs written with the openai client send the same
// requests with the ollama client to /api/chat and /api/embed, which is where Ollama's own
// /v1 layer sends them.
//
// compare: reads the two files and prints the table side by side, then a reading of it
// built from the figures (which way each went), so it never claims what they do not show.
//
// Needs Node 18 or later (Debian 12's nodejs) and the two pinned clients, nothing else.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';

// The workload, in seconds of the simulated world. Every program starts at start_s;
// "users" programs are people who wait for each reply and think before the next message,
// the others keep `concurrency` requests in flight until their list is done.
const PROGRAMS = [
  { name: 'chat-ui', priority: 'high', client: 'ollama',
    kind: 'chat-stream', start_s: 20, users: 2, turns: 6, think_s: [5, 30],
    models: ['llama3.2:1b'] },
  { name: 'evaluator', priority: 'normal', client: 'openai',
    kind: 'chat', start_s: 10, requests: 20, concurrency: 2, models: ['phi3:mini'],
    num_predict: [48, 128] },
  { name: 'batch', priority: 'low', client: 'ollama',
    kind: 'generate', start_s: 0, requests: 200, concurrency: 16,
    models: ['gemma:2b', 'qwen2.5:1.5b', 'smollm:1.7b', 'tinyllama:1.1b', 'qwen2.5:0.5b',
      'smollm:360m'],
    num_predict: [128, 512] },
  { name: 'embeddings', priority: 'low', client: 'openai',
    kind: 'embed', start_s: 0, requests: 16, concurrency: 2, models: ['nomic-embed-text'],
    inputs: 16 },
];

// Another program on the machine (a notebook) holds GPU memory for a while: the same
// schedule in both runs, through ollama-sim's control API (POST /sim/gpu/{index}).
const OTHER_MEMORY = [{ gpu: 1, mb: 3072, from_s: 40, to_s: 160 }];

const PRIORITIES = ['high', 'normal', 'low'];

// mulberry32: a small seeded generator, so the request list depends on the seed only.
function demo_rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function demo_pick(rng, list) {
  return list[Math.floor(rng() * list.length)];
}

function demo_between(rng, [lo, hi]) {
  return Math.round(lo + rng() * (hi - lo));
}

// The request list of every program, from the seed alone.
function demo_plan(seed) {
  const rng = demo_rng(seed);
  return PROGRAMS.map((p) => {
    const items = [];
    if (p.kind === 'chat-stream') {
      for (let u = 0; u < p.users; u++) {
        const turns = [];
        for (let t = 0; t < p.turns; t++) {
          turns.push({ model: p.models[0], think_s: demo_between(rng, p.think_s),
            text: `user ${u} question ${t}: ${Math.floor(rng() * 1e6)}` });
        }
        items.push(turns);
      }
    } else {
      for (let i = 0; i < p.requests; i++) {
        const item = { model: demo_pick(rng, p.models), text: `${p.name} item ${i}: ${Math.floor(rng() * 1e6)}` };
        if (p.num_predict) item.num_predict = demo_between(rng, p.num_predict);
        if (p.inputs) {
          item.input = Array.from({ length: p.inputs }, (_, k) => `document ${i}.${k}: ${Math.floor(rng() * 1e6)}`);
        }
        items.push(item);
      }
    }
    return { program: p, items };
  });
}

// The pinned clients live in tests/npm/node_modules (tests/npm/run.sh and demo.sh install
// them there); resolve them from that package, wherever this script is run from.
async function demo_clients() {
  const req = createRequire(new URL('../tests/npm/package.json', import.meta.url));
  const load = async (name) => import(pathToFileURL(req.resolve(name)).href);
  const ollama = await load('ollama');
  const openai = await load('openai');
  return { Ollama: ollama.Ollama, OpenAI: openai.OpenAI || openai.default };
}

function demo_error_text(e) {
  const status = e.status_code ?? e.status;
  const msg = (e.error && (e.error.message || e.error)) || e.message || String(e);
  return (status ? `${status} ` : '') + String(msg).slice(0, 200);
}

// One request of a program, with the client the program was written with; returns
// {ok, tokens, ttft (wall ms, streamed only)}; a failed request throws the client's error.
async function demo_send(p, item, cli, messages, t0) {
  if (p.client === 'openai' && cli.openai) {
    if (p.kind === 'embed') {
      const r = await cli.openai.embeddings.create({ model: item.model, input: item.input });
      return { tokens: 0, ok: r.data.length === item.input.length };
    }
    const r = await cli.openai.chat.completions.create({
      model: item.model, messages: [{ role: 'user', content: item.text }],
      max_tokens: item.num_predict });
    return { tokens: r.usage.completion_tokens, ok: true };
  }
  if (p.kind === 'embed') {
    const r = await cli.ollama.embed({ model: item.model, input: item.input });
    return { tokens: 0, ok: r.embeddings.length === item.input.length };
  }
  if (p.kind === 'chat') {
    const r = await cli.ollama.chat({ model: item.model, stream: false,
      messages: [{ role: 'user', content: item.text }],
      options: { num_predict: item.num_predict } });
    return { tokens: r.eval_count, ok: true };
  }
  if (p.kind === 'generate') {
    const r = await cli.ollama.generate({ model: item.model, prompt: item.text,
      stream: false, options: { num_predict: item.num_predict } });
    return { tokens: r.eval_count, ok: true };
  }
  // chat-stream: a chat window shows the reply as it comes; what the person waits for is
  // the first token.
  const stream = await cli.ollama.chat({ model: item.model, messages, stream: true });
  let ttft = null;
  let text = '';
  let tokens = 0;
  for await (const chunk of stream) {
    if (ttft === null && chunk.message && chunk.message.content) ttft = Date.now() - t0;
    text += (chunk.message && chunk.message.content) || '';
    if (chunk.done) tokens = chunk.eval_count;
  }
  messages.push({ role: 'assistant', content: text });
  return { ttft, tokens, ok: tokens > 0 };
}

function demo_sleep(ms) {
  return new Promise((r) => setTimeout(r, Math.max(0, ms)));
}

async function demo_run(args) {
  const { Ollama, OpenAI } = await demo_clients();
  const scale = args.scale;
  const wall = (s) => (s * 1000) / scale; // simulated seconds -> wall ms
  const sim_s = (ms) => (ms * scale) / 1000; // wall ms -> simulated seconds
  const plan = demo_plan(args.seed);
  const records = [];
  const start = Date.now();

  // Each program is configured the way it would be for Ollama, plus one header.
  const clients = (p) => {
    const headers = { 'X-Vramd-Priority': p.priority };
    return {
      ollama: new Ollama({ host: args.url, headers }),
      openai: args.no_v1 ? null : new OpenAI({ baseURL: args.url.replace(/\/+$/, '') + '/v1',
        apiKey: 'demo', defaultHeaders: headers, maxRetries: 0, timeout: 3600e3 }),
    };
  };

  const one = async (p, cli, item, messages) => {
    const t0 = Date.now();
    const rec = { program: p.name, client: p.client === 'openai' && cli.openai ? 'openai' : 'ollama',
      kind: p.kind, priority: p.priority, model: item.model, start_s: sim_s(t0 - start) };
    try {
      const r = await demo_send(p, item, cli, messages, t0);
      rec.ok = r.ok;
      rec.tokens = r.tokens || 0;
      if (r.ttft !== undefined && r.ttft !== null) rec.ttft_s = sim_s(r.ttft);
      if (!r.ok) rec.error = 'empty reply';
    } catch (e) {
      rec.ok = false;
      rec.error = demo_error_text(e);
    }
    rec.latency_s = sim_s(Date.now() - t0);
    records.push(rec);
  };

  const programs = plan.map(async ({ program: p, items }) => {
    await demo_sleep(wall(p.start_s));
    const cli = clients(p);
    if (p.kind === 'chat-stream') {
      await Promise.all(items.map(async (turns) => {
        const messages = [];
        for (const item of turns) {
          await demo_sleep(wall(item.think_s));
          messages.push({ role: 'user', content: item.text });
          await one(p, cli, item, messages);
        }
      }));
    } else {
      let next = 0;
      const worker = async () => {
        while (next < items.length) await one(p, cli, items[next++], null);
      };
      await Promise.all(Array.from({ length: p.concurrency }, worker));
    }
    const mine = records.filter((r) => r.program === p.name);
    process.stderr.write(`   ${p.name} (${p.priority}) done at ${sim_s(Date.now() - start).toFixed(0)} s: ` +
      `${mine.length} requests, ${mine.filter((r) => !r.ok).length} failed\n`);
  });

  // Another program's GPU memory: not a client of Ollama, it talks to the simulator.
  let stop_other = false;
  let other_error = null;
  const other = (async () => {
    if (!args.sim) return;
    const events = OTHER_MEMORY.flatMap((o) => [{ at_s: o.from_s, gpu: o.gpu, mb: o.mb },
      { at_s: o.to_s, gpu: o.gpu, mb: 0 }]).sort((x, y) => x.at_s - y.at_s);
    for (const ev of events) {
      while (!stop_other && Date.now() < start + wall(ev.at_s)) await demo_sleep(10);
      if (stop_other) return;
      // One server for the whole machine sees every GPU by its index; one server per
      // GPU (vramd's SUPERVISE=per-gpu) sees its own as GPU 0.
      const [base, index] = args.sim.length === 1 ? [args.sim[0], ev.gpu] : [args.sim[ev.gpu], 0];
      if (!base) throw new Error(`--sim names no server for GPU ${ev.gpu}`);
      const r = await fetch(`${base}/sim/gpu/${index}`, { method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ other_mb: ev.mb }) });
      if (!r.ok) throw new Error(`POST ${base}/sim/gpu/${index}: ${r.status} ${await r.text()}`);
    }
  })().catch((e) => { other_error = e; });

  await Promise.all(programs);
  const makespan_s = sim_s(Date.now() - start);
  stop_other = true;
  await other;
  if (other_error) throw other_error;

  // What the servers counted, read once the work is done.
  const get = async (url) => {
    const r = await fetch(url);
    if (!r.ok) throw new Error(`GET ${url}: ${r.status}`);
    return r.json();
  };
  const sim_states = args.sim ? await Promise.all(args.sim.map((u) => get(`${u}/sim/state`))) : [];
  const vramd_stats = args.vramd ? await get(`${args.url}/api/stats`) : null;

  const out = { url: args.url, seed: args.seed, time_scale: scale, no_v1: args.no_v1,
    other_memory: args.sim ? OTHER_MEMORY : [], makespan_s,
    programs: PROGRAMS.map(({ name, priority, client }) => ({ name, priority, client })),
    requests: records.sort((a, b) => a.start_s - b.start_s), sim_states, vramd_stats };
  process.stdout.write(JSON.stringify(out) + '\n');
}

// The workload in words, for the top of the demo's output.
function demo_describe(args) {
  const calls = { generate: 'generate', embed: 'embeddings', chat: 'chat',
    'chat-stream': 'streamed chat' };
  const lines = demo_plan(args.seed).map(({ program: p, items }) => {
    const models = p.models.length > 2 ? `${p.models.length} models` : p.models.join(', ');
    const n = p.users ? items.reduce((k, turns) => k + turns.length, 0) : items.length;
    const how = p.users ? `(${p.users} people x ${p.turns})` : `(${p.concurrency} at a time)`;
    return `  ${p.name.padEnd(11)}${p.priority.padEnd(7)}${p.client.padEnd(8)}` +
      `${calls[p.kind].padEnd(15)}${models.padEnd(18)}${`${p.start_s} s`.padStart(4)}  ${n} ${how}`;
  });
  for (const o of OTHER_MEMORY) {
    lines.push(`  ${'notebook'.padEnd(18)}another process, holds ${o.mb} MiB of GPU ${o.gpu} ` +
      `from ${o.from_s} s to ${o.to_s} s`);
  }
  const head = `  ${'program'.padEnd(11)}${'prio'.padEnd(7)}${'client'.padEnd(8)}` +
    `${'call'.padEnd(15)}${'model'.padEnd(18)}from  requests`;
  const many = PROGRAMS.filter((p) => p.models.length > 2)
    .map((p) => `  ${p.name}: ${p.models.join(' ')}`);
  return [head, ...lines, ...many, '  (times in simulated seconds)'].join('\n') + '\n';
}

function demo_args(argv) {
  const args = { seed: 1, scale: 1, no_v1: false, sim: null, vramd: false, url: null, files: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--url') args.url = val();
    else if (a === '--seed') args.seed = Number(val());
    else if (a === '--scale') args.scale = Number(val());
    else if (a === '--sim') args.sim = val().split(',');
    else if (a === '--no-v1') args.no_v1 = true;
    else if (a === '--vramd') args.vramd = true;
    else if (a.startsWith('--')) throw new Error(`unknown option ${a}`);
    else args.files.push(a);
  }
  if (!(args.scale > 0)) throw new Error('--scale must be a number above 0');
  if (!Number.isInteger(args.seed)) throw new Error('--seed must be an integer');
  return args;
}

async function demo_main() {
  const [cmd, ...rest] = process.argv.slice(2);
  const args = demo_args(rest);
  if (cmd === 'run') {
    if (!args.url) throw new Error('run needs --url');
    await demo_run(args);
  } else if (cmd === 'describe') {
    process.stdout.write(demo_describe(args));
  } else if (cmd === 'compare') {
    if (args.files.length !== 2) throw new Error('compare needs two files');
    demo_compare(...args.files.map((f) => JSON.parse(fs.readFileSync(f, 'utf8'))));
  } else {
    throw new Error('usage: demo-clients.mjs run --url URL [--seed N] [--scale S] [--no-v1] ' +
      '[--sim URL[,URL]] [--vramd] | describe [--seed N] | compare STRAIGHT.json VRAMD.json');
  }
}

// ---- compare: the side-by-side table and its reading ----------------------------------

// Nearest-rank percentile of a list of numbers; NaN for an empty list.
function demo_pct(values, p) {
  if (values.length === 0) return NaN;
  const v = [...values].sort((a, b) => a - b);
  return v[Math.max(1, Math.ceil((p / 100) * v.length)) - 1];
}

// ollama-sim's counters, summed over the servers of one run.
function demo_counters(run) {
  const total = {};
  for (const st of run.sim_states) {
    for (const [k, v] of Object.entries(st.counters || {})) total[k] = (total[k] || 0) + v;
  }
  return total;
}

// Everything the table and the reading need from one run.
function demo_figures(run) {
  const c = demo_counters(run);
  const reqs = run.requests;
  const tokens = reqs.reduce((n, r) => n + (r.tokens || 0), 0);
  const programs = run.programs.map((p) => {
    const mine = reqs.filter((r) => r.program === p.name);
    const ok = mine.filter((r) => r.ok);
    // A streamed chat is judged by its first token (what a person waits for); the others
    // by the whole reply.
    const ttft = ok.filter((r) => r.ttft_s !== undefined).map((r) => r.ttft_s);
    const times = ttft.length ? ttft : ok.map((r) => r.latency_s);
    return { ...p, n: mine.length, failed: mine.length - ok.length,
      end: Math.max(...mine.map((r) => r.start_s + r.latency_s)),
      measure: ttft.length ? 'first token' : 'reply',
      p50: demo_pct(times, 50), p95: demo_pct(times, 95) };
  });
  return { n: reqs.length, failed: reqs.filter((r) => !r.ok).length,
    errors: [...new Set(reqs.filter((r) => !r.ok).map((r) => r.error))],
    makespan: run.makespan_s, loads: c.loads || 0, evictions: c.evictions || 0,
    spills: c.cpu_spills || 0, cpu_tokens: c.cpu_tokens || 0, tokens,
    ooms: (c.oom_failures || 0) + (c.runtime_ooms || 0), rejected: c.rejected_503 || 0,
    programs };
}

// 'lower', 'higher' or 'same': b against a, "same" within 10 % or `slack` (the noise of a
// figure: a second of a latency, one load), so small differences are not read as results.
function demo_cmp(a, b, slack) {
  if (!Number.isFinite(a) || !Number.isFinite(b)) return 'same';
  if (Math.abs(b - a) <= Math.max(slack, 0.1 * Math.max(a, b))) return 'same';
  return b < a ? 'lower' : 'higher';
}

const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : '-');
const f0 = (x) => (Number.isFinite(x) ? x.toFixed(0) : '-');
const share = (f) => (f.tokens ? ` (${((100 * f.cpu_tokens) / f.tokens).toFixed(1)} %)` : '');
const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;

// How one program fared through vramd against straight: 'sooner', 'later', 'mixed' (one
// of p50 and p95 lower, the other higher) or 'same'.
function demo_verdict(pa, pb) {
  const v = [demo_cmp(pa.p50, pb.p50, 1), demo_cmp(pa.p95, pb.p95, 1)];
  if (v.includes('lower') && v.includes('higher')) return 'mixed';
  if (v.includes('lower')) return 'sooner';
  if (v.includes('higher')) return 'later';
  return 'same';
}

// The reading: sentences built from the figures, each saying which way a number went.
function demo_reading(a, b) {
  const s = [];
  if (a.failed === 0 && b.failed === 0) {
    s.push(`Every one of the ${a.n} requests was answered both ways.`);
  } else {
    s.push(`${a.failed} of ${a.n} requests failed straight to Ollama and ${b.failed} through vramd` +
      ` (${[...a.errors, ...b.errors].slice(0, 2).join('; ')}).`);
  }
  if (a.ooms + b.ooms > 0) {
    s.push(`Ollama ran out of memory ${plural(a.ooms, 'time', 'times')} straight and ` +
      `${plural(b.ooms, 'time', 'times')} through vramd.`);
  }
  if (a.spills + b.spills === 0) {
    s.push('No load spilled onto the CPU either way.');
  } else {
    s.push(`Ollama alone put ${plural(a.spills, 'load', 'loads')} partly on the CPU, where ` +
      `${f0(a.cpu_tokens)} tokens${share(a)} were generated at CPU speed; through vramd ` +
      `${plural(b.spills, 'load', 'loads')} spilled and ${f0(b.cpu_tokens)} tokens${share(b)} ` +
      'came from the CPU.');
  }
  const loads = demo_cmp(a.loads, b.loads, 1);
  s.push(`Models were loaded ${b.loads} times through vramd against ${a.loads} times straight` +
    (loads === 'same' ? ' (about as often)' : loads === 'lower' ? ' (fewer)' : ' (more)') +
    `, and Ollama evicted a model by itself ${plural(b.evictions, 'time', 'times')} against ` +
    `${a.evictions}.`);
  const groups = { sooner: [], later: [], mixed: [], same: [] };
  for (const [i, pa] of a.programs.entries()) {
    const pb = b.programs[i];
    groups[demo_verdict(pa, pb)].push(`${pa.name} (${pa.priority}, ${f1(pb.p50)} / ` +
      `${f1(pb.p95)} s against ${f1(pa.p50)} / ${f1(pa.p95)} s)`);
  }
  const said = [];
  if (groups.sooner.length) said.push(`answered ${groups.sooner.join(', ')} sooner`);
  if (groups.later.length) said.push(`answered ${groups.later.join(', ')} later`);
  if (groups.mixed.length) {
    said.push(`was sooner at one of p50 and p95 and later at the other for ${groups.mixed.join(', ')}`);
  }
  if (groups.same.length) said.push(`made no clear difference to ${groups.same.join(', ')}`);
  s.push(`At p50 / p95, vramd ${said.join('; ')}.`);
  const mk = demo_cmp(a.makespan, b.makespan, 5);
  s.push(`All the work was done after ${f0(b.makespan)} s through vramd and ${f0(a.makespan)} s ` +
    'straight' + (mk === 'same' ? ' (about the same).' : mk === 'lower' ? ' (vramd first).' :
    ' (Ollama alone first).'));
  return s.join(' ');
}

function demo_wrap(text, width) {
  const lines = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines.join('\n');
}

function demo_compare(straight, vramd) {
  const a = demo_figures(straight);
  const b = demo_figures(vramd);
  const rows = [
    ['requests answered / failed', `${a.n - a.failed} / ${a.failed}`, `${b.n - b.failed} / ${b.failed}`],
    ['all work done after (makespan, s)', f0(a.makespan), f0(b.makespan)],
    ['model loads (ollama-sim)', a.loads, b.loads],
    ['evictions Ollama made itself', a.evictions, b.evictions],
    ['loads spilled onto the CPU', a.spills, b.spills],
    ['tokens generated on the CPU', f0(a.cpu_tokens) + share(a), f0(b.cpu_tokens) + share(b)],
    ['OOM failures / 503 (queue full)', `${a.ooms} / ${a.rejected}`, `${b.ooms} / ${b.rejected}`],
  ];
  const line = (name, x, y) => name.padEnd(36) + String(x).padStart(22) + String(y).padStart(20);
  const out = [line('', 'straight to Ollama', 'through vramd')];
  for (const row of rows) out.push(line(...row));
  out.push('each program: p50 / p95 of its requests (s), then when its last answer came (s)');
  for (const [i, pa] of a.programs.entries()) {
    const cell = (p) => `${f1(p.p50)} / ${f1(p.p95)}, at ${f0(p.end)}`;
    out.push(line(`  ${pa.name.padEnd(11)}${pa.priority.padEnd(7)}${pa.measure}`, cell(pa),
      cell(b.programs[i])));
  }
  const st = vramd.vramd_stats;
  if (st) {
    const bp = st.jobs.by_priority || {};
    const jobs = PRIORITIES.map((p) => `${p} ${(bp[p] || {}).total || 0}`).join(', ');
    out.push('');
    out.push(demo_wrap(`vramd's own count (GET /api/stats): ${st.loads} loads, ${st.unloads} unloads, ` +
      `${st.load_failures} load failures, ${st.cpu_spills} spills seen; ${st.jobs.total} jobs ` +
      `(${jobs}): ${st.jobs.by_status.complete || 0} complete, ${st.jobs.by_status.failed || 0} ` +
      `failed, ${st.jobs.by_status.cancelled || 0} cancelled.`, 90));
  }
  out.push('');
  out.push(demo_wrap(demo_reading(a, b), 90));
  process.stdout.write(out.join('\n') + '\n');
}

demo_main().catch((e) => {
  process.stderr.write(`demo-clients: ${e.message}\n`);
  process.exit(1);
});
