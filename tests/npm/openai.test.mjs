// The official openai npm client (pinned in package.json) against vramd's OpenAI-compatible
// endpoints: models list and retrieve, chat (not streaming, streaming with include_usage,
// the client's own stream accumulator, max_tokens), completions (both ways), embeddings
// (the client's default base64, float, raw base64) and errors (404 unknown model, 400 bad
// parameter) in OpenAI's error shape. It does not start anything: VRAMD_URL is the base
// URL of a running vramd (e.g. http://127.0.0.1:5001) whose nodes serve the models named
// below (ollama-sim's defaults). Optional: VRAMD_API_KEY, VRAMD_CHAT_MODEL,
// VRAMD_COMPLETION_MODEL, VRAMD_EMBED_MODEL, VRAMD_EMBED_DIMS. Prints PASS/FAIL per test
// and "N passed, N failed"; exits non-zero on failure. Node 18 compatible.
import OpenAI from 'openai';

const baseURL = process.env.VRAMD_URL;
if (!baseURL) {
  console.log('VRAMD_URL is not set (the base URL of a running vramd)');
  console.log('0 passed, 1 failed');
  process.exit(2);
}
const chatModel = process.env.VRAMD_CHAT_MODEL || 'llama3.2:1b';
const completionModel = process.env.VRAMD_COMPLETION_MODEL || 'qwen2.5:0.5b';
const embedModel = process.env.VRAMD_EMBED_MODEL || 'all-minilm';
const embedDims = Number(process.env.VRAMD_EMBED_DIMS || 384);

const client = new OpenAI({
  baseURL: baseURL.replace(/\/+$/, '') + '/v1',
  // The client refuses to start without a key; vramd ignores it unless it has a keys file.
  apiKey: process.env.VRAMD_API_KEY || 'vramd',
  maxRetries: 0,
  timeout: 120000,
});

function assert(cond, msg) {
  if (!cond) throw new Error('assertion failed: ' + msg);
}

const hello = [{ role: 'user', content: 'hello' }];

async function expectError(fn) {
  try {
    await fn();
  } catch (e) {
    return e;
  }
  throw new Error('assertion failed: the request did not fail');
}

function unitLength(v) {
  return Math.abs(v.reduce((s, x) => s + x * x, 0) - 1) < 1e-4;
}

const tests = [
  ['models list', async () => {
    const ids = [];
    for await (const m of client.models.list()) {
      assert(m.object === 'model', JSON.stringify(m));
      assert(typeof m.created === 'number' && typeof m.owned_by === 'string', JSON.stringify(m));
      ids.push(m.id);
    }
    // Ids are the names the nodes list ("all-minilm:latest" for "all-minilm").
    for (const want of [chatModel, completionModel, embedModel]) {
      assert(ids.includes(want) || ids.includes(want + ':latest'), want + ' not in ' + ids.join(','));
    }
  }],
  ['models retrieve', async () => {
    const m = await client.models.retrieve(chatModel);
    assert(m.id === chatModel && m.object === 'model', JSON.stringify(m));
    assert(m.owned_by === 'library', JSON.stringify(m));
  }],
  ['chat, not streaming', async () => {
    const r = await client.chat.completions.create({ model: chatModel, messages: hello });
    assert(r.object === 'chat.completion' && r.id.startsWith('chatcmpl-'), JSON.stringify(r));
    assert(r.choices.length === 1 && r.choices[0].index === 0, 'one choice');
    const c = r.choices[0];
    assert(c.message.role === 'assistant' && c.message.content.length > 0, JSON.stringify(c));
    assert(c.finish_reason === 'stop', c.finish_reason);
    assert(r.usage.completion_tokens > 0 && r.usage.prompt_tokens > 0, JSON.stringify(r.usage));
    assert(r.usage.total_tokens === r.usage.prompt_tokens + r.usage.completion_tokens, 'total');
    assert(typeof r.created === 'number' && r.model.length > 0, 'created, model');
  }],
  ['chat, streaming with include_usage', async () => {
    const whole = await client.chat.completions.create({ model: chatModel, messages: hello });
    const stream = await client.chat.completions.create({
      model: chatModel, messages: hello, stream: true, stream_options: { include_usage: true },
    });
    let text = '';
    let finish = null;
    let usage = null;
    const ids = new Set();
    let n = 0;
    for await (const chunk of stream) {
      assert(chunk.object === 'chat.completion.chunk', JSON.stringify(chunk));
      ids.add(chunk.id);
      if (n++ === 0) assert(chunk.choices[0].delta.role === 'assistant', 'role first');
      if (chunk.usage) usage = chunk.usage;
      if (chunk.choices.length === 0) continue;
      text += chunk.choices[0].delta.content || '';
      if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
    }
    assert(n > 3 && ids.size === 1, n + ' chunks, ' + ids.size + ' ids');
    assert(text === whole.choices[0].message.content, 'same text streamed and not');
    assert(finish === 'stop', 'finish ' + finish);
    assert(usage && usage.completion_tokens === whole.usage.completion_tokens,
      JSON.stringify(usage));
  }],
  ['chat, the client stream helper and max_tokens', async () => {
    const runner = client.chat.completions.stream({
      model: chatModel, messages: [{ role: 'system', content: 'be brief' }, ...hello],
      max_tokens: 5,
    });
    let deltas = '';
    runner.on('content', (delta) => { deltas += delta; });
    const final = await runner.finalChatCompletion();
    const c = final.choices[0];
    assert(c.finish_reason === 'length', c.finish_reason);
    assert(c.message.content === deltas && deltas.length > 0, JSON.stringify(c.message));
  }],
  ['completions', async () => {
    const r = await client.completions.create({
      model: completionModel, prompt: 'Why is the sky blue?', max_tokens: 8,
    });
    assert(r.object === 'text_completion' && r.id.startsWith('cmpl-'), JSON.stringify(r));
    assert(r.choices[0].text.length > 0 && r.choices[0].finish_reason === 'length',
      JSON.stringify(r.choices[0]));
    assert(r.usage.completion_tokens === 8, JSON.stringify(r.usage));

    const stream = await client.completions.create({
      model: completionModel, prompt: 'Why is the sky blue?', max_tokens: 8, stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage = null;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const choice of chunk.choices) text += choice.text;
    }
    assert(text === r.choices[0].text, 'same text streamed and not');
    assert(usage && usage.completion_tokens === 8, JSON.stringify(usage));
  }],
  ['embeddings, the default (base64 on the wire)', async () => {
    const r = await client.embeddings.create({ model: embedModel, input: ['a', 'b'] });
    assert(r.object === 'list' && r.data.length === 2, JSON.stringify(r).slice(0, 200));
    assert(r.data[1].index === 1 && r.data[0].object === 'embedding', 'items');
    const v = Array.from(r.data[0].embedding);
    assert(v.length === embedDims, 'dims ' + v.length);
    assert(unitLength(v), 'unit length');
    assert(r.usage.prompt_tokens > 0 && r.usage.total_tokens === r.usage.prompt_tokens,
      JSON.stringify(r.usage));
  }],
  ['embeddings, float and raw base64', async () => {
    const def = await client.embeddings.create({ model: embedModel, input: 'same text' });
    const flt = await client.embeddings.create({
      model: embedModel, input: 'same text', encoding_format: 'float',
    });
    const a = Array.from(def.data[0].embedding);
    const b = flt.data[0].embedding;
    assert(Array.isArray(b) && b.length === a.length, 'float array');
    // float32 on both paths: the same numbers.
    assert(a.every((x, i) => Math.fround(b[i]) === x), 'base64 and float agree');
    const raw = await client.embeddings.create({
      model: embedModel, input: 'same text', encoding_format: 'base64',
    });
    const s = raw.data[0].embedding;
    assert(typeof s === 'string', typeof s);
    const bytes = Buffer.from(s, 'base64');
    assert(bytes.length === 4 * a.length, 'bytes');
    assert(bytes.readFloatLE(0) === a[0], 'little-endian float32');
  }],
  ['404 unknown model', async () => {
    const err = await expectError(() => client.chat.completions.create({
      model: 'no-such-model', messages: hello,
    }));
    assert(err instanceof OpenAI.NotFoundError && err.status === 404, String(err));
    assert(typeof err.error.message === 'string' && err.error.message.includes('no-such-model'),
      JSON.stringify(err.error));
    assert(typeof err.type === 'string' && err.code === 'model_not_found', JSON.stringify(err.error));
    const err2 = await expectError(() => client.embeddings.create({ model: 'nope', input: 'x' }));
    assert(err2 instanceof OpenAI.NotFoundError, String(err2));
    const err3 = await expectError(() => client.models.retrieve('no-such-model'));
    assert(err3 instanceof OpenAI.NotFoundError, String(err3));
  }],
  ['400 bad parameter', async () => {
    const err = await expectError(() => client.chat.completions.create({
      model: chatModel, messages: hello, max_tokens: 0,
    }));
    assert(err instanceof OpenAI.BadRequestError && err.status === 400, String(err));
    assert(err.param === 'max_tokens' && err.type === 'invalid_request_error',
      JSON.stringify(err.error));
    const err2 = await expectError(() => client.chat.completions.create({
      model: chatModel, messages: [],
    }));
    assert(err2 instanceof OpenAI.BadRequestError && err2.param === 'messages',
      JSON.stringify(err2.error));
  }],
];

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
console.log(passed + ' passed, ' + failed + ' failed');
process.exit(failed > 0 ? 1 : 0);
