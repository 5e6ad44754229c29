// vramd dashboard (web/, built into vramd and served at /ui; docs/dashboard.md).
//
// The page holds no data of its own: every second it reads the API (GPUs and their
// history, nodes and their models, the queue, running jobs) and it follows
// GET /api/events, refreshing at once when an event arrives. With API keys it sends
// the key the user typed (kept in sessionStorage, so it goes with the tab) as
// "Authorization: Bearer KEY". The event stream is read with fetch(), not EventSource,
// because EventSource cannot send that header. Admin actions (force to GPU, unload,
// cancel) appear only when GET /api/whoami says the caller may use them.
//
// The Content-Security-Policy of /ui forbids inline styles and scripts: the DOM is built
// with createElement, widths are set through element.style (CSSOM), never markup.
'use strict';

(() => {
  const POLL_MS = 1000;
  const HISTORY_SAMPLES = 60;
  const QUEUE_DETAILS = 20; // queued jobs whose position and ETA are fetched each round
  const MAX_EVENTS = 200;
  const KEY_STORE = 'vramd.apiKey';
  const PRIORITIES = ['high', 'normal', 'low'];
  const STATES = ['OPTIMAL', 'NORMAL', 'THROTTLED', 'CRITICAL', 'SHUTDOWN', 'UNAVAILABLE'];

  const $ = (id) => document.getElementById(id);
  let who = null; // GET /api/whoami
  let pollTimer = null;
  let refreshing = false;
  let refreshAgain = false;
  let eventsAbort = null;
  const lastRender = {}; // section -> the JSON it was last drawn from

  // --- Helpers -------------------------------------------------------------------

  // el('td', {class: 'num', text: '3'}, child...): attributes, never inline style.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') e.textContent = String(v);
      else if (k === 'class') e.className = v;
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c !== null && c !== undefined && c !== false)
        e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function svg(tag, attrs) {
    const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  }

  function bytes(n) {
    if (n === null || n === undefined) return '?';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    let v = n;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return (i === 0 ? String(v) : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)) + ' ' + units[i];
  }

  function seconds(s) {
    if (s === null || s === undefined || !isFinite(s)) return '–';
    if (s < 1) return '<1 s';
    if (s < 90) return Math.round(s) + ' s';
    if (s < 5400) return Math.round(s / 60) + ' min';
    return (s / 3600).toFixed(1) + ' h';
  }

  function since(iso) {
    if (!iso) return null;
    return Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  }

  function clock(iso) {
    const d = iso ? new Date(iso) : new Date();
    return d.toLocaleTimeString([], {hour12: false});
  }

  function stateClass(state) {
    return 's-' + (STATES.includes(state) ? state : 'UNAVAILABLE').toLowerCase();
  }

  function notice(text, ok) {
    const n = $('notice');
    n.textContent = text || '';
    n.hidden = !text;
    n.classList.toggle('ok', !!ok);
  }

  // Draws section with draw(data) only when data changed, so buttons under the mouse
  // are not replaced every second.
  function render(section, data, draw) {
    const json = JSON.stringify(data);
    if (lastRender[section] === json) return;
    lastRender[section] = json;
    $(section).replaceChildren(...[].concat(draw(data)).filter((c) => c));
  }

  // --- The API ---------------------------------------------------------------------

  function authHeaders(extra) {
    const h = Object.assign({}, extra);
    const key = sessionStorage.getItem(KEY_STORE);
    if (key) h.Authorization = 'Bearer ' + key;
    return h;
  }

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(method, path, body) {
    const init = {method, cache: 'no-store', headers: authHeaders()};
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const r = await fetch(path, init);
    let data = null;
    try {
      data = await r.json();
    } catch (e) {
      data = null;
    }
    if (!r.ok)
      throw new ApiError(r.status, (data && data.error) || `${method} ${path}: HTTP ${r.status}`);
    return data;
  }

  // --- Who the page talks as ---------------------------------------------------------

  async function identify() {
    who = await api('GET', '/api/whoami');
    const needKey = who.api_keys && !who.key;
    $('key-form').hidden = !needKey;
    $('key-forget').hidden = !(who.api_keys && sessionStorage.getItem(KEY_STORE));
    $('who').textContent = who.api_keys && who.key
      ? `key ${who.key}${who.admin ? ' (admin)' : ''}` : '';
    document.body.classList.toggle('admin', !!who.admin);
    for (const e of document.querySelectorAll('.admin-only')) e.hidden = !who.admin;
    for (const k of Object.keys(lastRender)) delete lastRender[k];
    if (needKey) {
      notice(sessionStorage.getItem(KEY_STORE)
        ? `This key was refused: ${who.error}` : 'This vramd needs an API key: enter it above.');
      $('key-input').focus();
      return false;
    }
    notice('');
    return true;
  }

  async function start() {
    stop();
    try {
      if (!(await identify())) return;
    } catch (e) {
      setConn('down', 'vramd unreachable');
      notice(`Cannot reach vramd: ${e.message}. Retrying...`);
      pollTimer = setTimeout(start, 3000);
      return;
    }
    followEvents();
    refresh();
  }

  function stop() {
    clearTimeout(pollTimer);
    pollTimer = null;
    if (eventsAbort) eventsAbort.abort();
    eventsAbort = null;
  }

  function setConn(state, text) {
    const c = $('conn');
    c.dataset.state = state;
    c.textContent = text;
  }

  // --- Refresh: everything the page shows, once a second and after each event --------

  function refreshSoon() {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(refresh, 100);
  }

  async function refresh() {
    clearTimeout(pollTimer);
    if (refreshing) {
      refreshAgain = true;
      return;
    }
    refreshing = true;
    try {
      const [status, history, throttle, stats, report, nodes, models, queued, running] = await Promise.all([
        api('GET', '/api/gpu/status/all'),
        api('GET', `/api/gpu/metrics/history?limit=${HISTORY_SAMPLES}`),
        api('GET', '/api/gpu/throttle/status'),
        api('GET', '/api/stats'),
        api('GET', '/api/vram_report'),
        api('GET', '/api/nodes'),
        api('GET', '/api/models'),
        api('GET', '/api/jobs?status=queued&limit=1000'),
        api('GET', '/api/jobs?status=pending,running&limit=200'),
      ]);
      const details = await queueDetails(queued.jobs);
      drawGpus(status, history, throttle);
      drawNodes(report, nodes, models);
      drawQueue(stats, details);
      drawRunning(running.jobs);
      $('updated').textContent = 'updated ' + clock();
      if ($('conn').dataset.state === 'down') setConn('connecting', 'connecting');
      if ($('notice').textContent.startsWith('Cannot reach')) notice('');
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        refreshing = false;
        start();
        return;
      }
      setConn('down', 'vramd unreachable');
      notice(`Cannot reach vramd: ${e.message}`);
    }
    refreshing = false;
    if (refreshAgain) {
      refreshAgain = false;
      refreshSoon();
      return;
    }
    pollTimer = setTimeout(refresh, POLL_MS);
  }

  // The queued jobs most likely to run next (each model's first, then by priority and
  // age), with their place and ETA from GET /api/job/{id}.
  async function queueDetails(jobs) {
    const rank = (j) => PRIORITIES.indexOf(j.priority);
    const order = jobs.slice().sort((a, b) =>
      rank(a) - rank(b) || Date.parse(a.submitted_at) - Date.parse(b.submitted_at));
    const pick = [];
    const seen = new Set();
    for (const j of order) {
      if (!seen.has(j.model)) {
        seen.add(j.model);
        pick.push(j);
      }
    }
    for (const j of order) {
      if (pick.length >= QUEUE_DETAILS) break;
      if (!pick.includes(j)) pick.push(j);
    }
    const got = await Promise.all(pick.slice(0, QUEUE_DETAILS).map((j) =>
      api('GET', '/api/job/' + encodeURIComponent(j.job_id)).catch(() => null)));
    // The listing comes from the store, which may lag a job that just started: such a
    // job is in neither the list nor the count of those not shown.
    return {
      list: got.filter((j) => j && j.status === 'queued')
        .sort((a, b) => a.queue_position - b.queue_position),
      notShown: Math.max(0, jobs.length - Math.min(pick.length, QUEUE_DETAILS)),
    };
  }

  // --- GPUs ------------------------------------------------------------------------

  function drawGpus(status, history, throttle) {
    const temps = {};
    for (const g of history.gpus || [])
      temps[g.index] = g.samples.map((s) => s.temperature_c).filter((t) => t !== null);
    const limits = {};
    for (const t of throttle.gpus || []) limits[t.index] = t;
    const gpus = (status.gpus || []).map((g) => ({g, t: temps[g.index] || [], th: limits[g.index] || null}));
    // The sample time changes every poll; drawing is cheap and holds no buttons.
    render('gpus', gpus, (list) => list.length
      ? list.map(({g, t, th}) => gpuCard(g, t, th))
      : el('p', {class: 'muted', text: status.telemetry === 'none'
        ? 'No GPU telemetry: vramd runs models on the CPU only.' : 'No GPU found yet.'}));
  }

  function gpuCard(g, temps, th) {
    const total = g.memory_total_bytes || 0;
    const parts = [
      ['ours', 'our models', g.memory_models_bytes],
      ['other', 'other programs', g.memory_other_bytes],
      ['reserved', 'reservations', g.memory_reserved_bytes],
      ['free', 'free', g.memory_free_bytes],
    ];
    const bar = el('div', {class: 'membar', title: `${bytes(g.memory_used_bytes)} used of ${bytes(total)}`});
    const legend = el('div', {class: 'legend'});
    for (const [cls, label, value] of parts) {
      const seg = el('span', {class: cls, 'data-part': cls, title: `${label}: ${bytes(value)}`});
      seg.style.width = total > 0 && value ? `${(100 * value / total).toFixed(2)}%` : '0';
      if (cls !== 'free') bar.append(seg);
      legend.append(el('span', {class: cls, text: `${label} ${bytes(value)}`}));
    }
    legend.append(el('span', {class: 'muted', text: `of ${bytes(total)}`}));

    const temp = g.temperature_c;
    const facts = el('div', {class: 'facts'},
      el('span', {}, 'util ', el('b', {text: g.gpu_util_percent !== null && g.gpu_util_percent !== undefined ? g.gpu_util_percent + '%' : '?'})),
      el('span', {}, 'power ', el('b', {text: g.power_w !== null && g.power_w !== undefined ? `${g.power_w.toFixed(0)} W` : '?'}),
        g.power_limit_w ? ` / ${g.power_limit_w.toFixed(0)} W` : ''),
      el('span', {}, 'speed ', el('b', {'data-field': 'speed', text: g.speed_multiplier !== null && g.speed_multiplier !== undefined ? `×${g.speed_multiplier}` : '?'})),
      // What throttling leaves of the GPU: jobs of one model at once, and how many run.
      th ? el('span', {'data-field': 'throttle'}, 'jobs ', el('b', {text: `${th.running}`}),
        ` / max ${th.max_concurrent} per model`) : null,
      g.fan_percent !== null && g.fan_percent !== undefined ? el('span', {}, 'fan ', el('b', {text: g.fan_percent + '%'})) : null,
      g.slowdown_temp_c ? el('span', {text: `slowdown ${g.slowdown_temp_c} °C`}) : null);
    const reasons = [].concat(g.state_reasons || [],
      (g.throttle_reasons || []).filter((r) => r !== 'gpu_idle').map((r) => 'nvml: ' + r));
    return el('div', {class: `card gpu ${stateClass(g.state)}`, 'data-gpu': g.index, 'data-state': g.state},
      el('h3', {},
        el('span', {class: 'name', text: `GPU ${g.index} · ${g.name || 'unknown'}`}),
        el('span', {class: 'badge state', 'data-field': 'state', text: g.state})),
      el('div', {class: 'row'},
        el('span', {class: 'temp', 'data-field': 'temperature', 'data-value': temp ?? '',
          text: temp !== null && temp !== undefined ? `${temp} °C` : '– °C'}),
        sparkline(temps, g.slowdown_temp_c),
        el('span', {class: 'muted', text: temps.length ? `${Math.min(...temps)}–${Math.max(...temps)} °C` : ''})),
      bar, legend, facts,
      g.dispatch_paused
        ? el('div', {class: 'paused', text: `dispatch paused${g.paused_until ? ' until ' + clock(g.paused_until) : ''}`})
        : null,
      th && th.cooldown_until
        ? el('div', {class: 'muted small', text: `cooling down: may leave ${g.state} at ${clock(th.cooldown_until)}`})
        : null,
      reasons.length ? el('ul', {class: 'reasons'}, reasons.map((r) => el('li', {text: r}))) : null);
  }

  function sparkline(values, limit) {
    const w = 160;
    const h = 36;
    const s = svg('svg', {class: 'spark', viewBox: `0 0 ${w} ${h}`, preserveAspectRatio: 'none',
      'data-field': 'sparkline', 'data-samples': values.length});
    if (values.length < 2) return s;
    const lo = Math.min(...values, 30);
    const hi = Math.max(...values, limit ? Math.min(limit, 100) : 90);
    const y = (v) => (h - 2 - ((v - lo) / (hi - lo || 1)) * (h - 4)).toFixed(1);
    if (limit && limit <= hi) s.append(svg('line', {class: 'limit', x1: 0, x2: w, y1: y(limit), y2: y(limit)}));
    const step = w / (HISTORY_SAMPLES - 1);
    const x0 = w - (values.length - 1) * step;
    s.append(svg('polyline', {points: values.map((v, i) => `${(x0 + i * step).toFixed(1)},${y(v)}`).join(' ')}));
    return s;
  }

  // --- Nodes and their models --------------------------------------------------------

  function location(m) {
    if (m.location === 'gpu') return ['loc-gpu', `GPU ${m.gpu ?? '?'}`];
    if (m.location === 'cpu') return ['loc-cpu', 'CPU'];
    if (m.location === 'gpu+cpu') return ['loc-mixed', `GPU ${m.gpu ?? '?'} + CPU`];
    return ['muted', m.location || 'none'];
  }

  function drawNodes(report, nodes, models) {
    const state = {};
    for (const n of nodes.nodes || []) state[n.node] = n;
    const data = (report.nodes || []).map((n) => ({
      node: n.node, url: n.url, up: state[n.node] ? state[n.node].state : null,
      breaker: state[n.node] ? state[n.node].breaker : null,
      version: state[n.node] ? state[n.node].version : null,
      telemetry: state[n.node] ? state[n.node].telemetry : null,
      // This host's GPUs have their own cards; another machine's (a node whose
      // telemetry is a remote vramd) show in the node's card.
      gpus: state[n.node] && state[n.node].telemetry === 'remote' ? state[n.node].gpus || [] : [],
      models: (n.models || []).map((m) => ({model: m.model, state: m.state, location: m.location,
        gpu: m.gpu, size_vram_bytes: m.size_vram_bytes, size_bytes: m.size_bytes,
        running: m.running, pinned: m.pinned, placement: m.placement})),
    }));
    render('nodes', {data, admin: who && who.admin}, () => data.map(nodeCard));
    fillActionPickers(data, models.models || []);
  }

  function nodeCard(n) {
    const rows = n.models.map((m) => {
      const [cls, where] = location(m);
      return el('tr', {'data-model': m.model},
        el('td', {text: m.model}),
        el('td', {text: m.state + (m.pinned ? ' (pinned)' : '')}),
        el('td', {class: cls, 'data-field': 'location', text: where}),
        el('td', {class: 'num', text: bytes(m.size_vram_bytes)}),
        el('td', {class: 'num', text: m.running ?? 0}),
        who && who.admin ? el('td', {},
          el('button', {type: 'button', 'data-op': 'force_gpu', 'data-model': m.model, 'data-node': n.node, text: 'GPU'}),
          ' ',
          el('button', {type: 'button', class: 'danger', 'data-op': 'unload', 'data-model': m.model, 'data-node': n.node, text: 'Unload'}))
          : null);
    });
    return el('div', {class: `card ${n.up === 'down' ? 'node-down' : 'node-up'}`, 'data-node': n.node},
      el('h3', {},
        el('span', {class: 'name', text: n.node}),
        el('span', {class: 'muted', text: n.url}),
        el('span', {class: 'badge', text: n.up || '?'})),
      el('div', {class: 'facts'},
        n.version ? el('span', {}, 'ollama ', el('b', {text: n.version})) : null,
        n.breaker ? el('span', {}, 'breaker ', el('b', {text: n.breaker})) : null),
      n.gpus.map((g) => nodeGpu(g)),
      rows.length
        ? el('table', {},
          el('thead', {}, el('tr', {},
            el('th', {text: 'model'}), el('th', {text: 'state'}), el('th', {text: 'where'}),
            el('th', {class: 'num', text: 'VRAM'}), el('th', {class: 'num', text: 'running'}),
            who && who.admin ? el('th', {}) : null)),
          el('tbody', {}, rows))
        : el('p', {class: 'muted', text: 'No model loaded.'}));
  }

  // A GPU of another machine: what GET /api/nodes says of it (memory only).
  function nodeGpu(g) {
    const used = el('span', {class: 'ours'});
    used.style.width = g.total_bytes ? `${(100 * (g.used_bytes || 0) / g.total_bytes).toFixed(2)}%` : '0';
    return el('div', {class: 'node-gpu', 'data-node-gpu': g.index},
      el('div', {class: 'facts'}, el('span', {}, el('b', {text: `GPU ${g.index}`}), ' ' + (g.name || '')),
        el('span', {text: `${bytes(g.used_bytes)} used of ${bytes(g.total_bytes)}`}),
        g.state && g.state !== 'available' ? el('span', {text: g.state}) : null),
      el('div', {class: 'membar'}, used));
  }

  function fillActionPickers(nodes, models) {
    if (!who || !who.admin) return;
    const names = models.map((m) => m.name);
    const nodeNames = nodes.map((n) => n.node);
    const key = JSON.stringify([names, nodeNames]);
    if (lastRender.pickers === key) return;
    lastRender.pickers = key;
    const mSel = $('action-model');
    const nSel = $('action-node');
    const keepM = mSel.value;
    const keepN = nSel.value;
    mSel.replaceChildren(...names.map((n) => el('option', {value: n, text: n})));
    nSel.replaceChildren(el('option', {value: '', text: 'every node'}),
      ...nodeNames.map((n) => el('option', {value: n, text: n})));
    if (names.includes(keepM)) mSel.value = keepM;
    if (nodeNames.includes(keepN)) nSel.value = keepN;
  }

  // --- The queue and running jobs ----------------------------------------------------

  function drawQueue(stats, {list: details, notShown}) {
    const byPrio = (stats.jobs && stats.jobs.by_priority) || {};
    const eta = {};
    for (const d of details)
      if (d.eta_s !== null && d.eta_s !== undefined && !(d.model in eta)) eta[d.model] = d.eta_s;
    const perModel = (stats.per_model || []).filter((m) => m.queued > 0 || m.running > 0)
      .map((m) => ({model: m.model, queued: m.queued, running: m.running, eta: eta[m.model] ?? null}));
    const prios = PRIORITIES.map((p) => ({p, q: (byPrio[p] || {}).queued ?? 0,
      pend: (byPrio[p] || {}).pending ?? 0, run: (byPrio[p] || {}).running ?? 0}));
    // ETAs change as time passes: round them so the table is redrawn only when they move.
    const list = details.map((d) => ({id: d.job_id, model: d.model, priority: d.priority,
      position: d.queue_position, eta: d.eta_s === null ? null : Math.round(d.eta_s),
      waited: Math.round(since(d.submitted_at) || 0), reason: d.waiting_reason}));
    const summary = {prios, perModel: perModel.map((m) => ({...m, eta: m.eta === null ? null : Math.round(m.eta)}))};
    render('queue-summary', summary, () => [
      el('table', {'data-table': 'by-priority'},
        el('thead', {}, el('tr', {}, el('th', {text: 'priority'}), el('th', {class: 'num', text: 'queued'}),
          el('th', {class: 'num', text: 'pending'}), el('th', {class: 'num', text: 'running'}))),
        el('tbody', {}, prios.map((r) => el('tr', {'data-priority': r.p},
          el('td', {class: 'p-' + r.p, text: r.p}), el('td', {class: 'num', text: r.q}),
          el('td', {class: 'num', text: r.pend}), el('td', {class: 'num', text: r.run}))))),
      el('table', {'data-table': 'by-model'},
        el('thead', {}, el('tr', {}, el('th', {text: 'model'}), el('th', {class: 'num', text: 'queued'}),
          el('th', {class: 'num', text: 'running'}), el('th', {class: 'num', text: 'next starts in'}))),
        el('tbody', {}, summary.perModel.length ? summary.perModel.map((m) => el('tr', {'data-model': m.model},
          el('td', {text: m.model}), el('td', {class: 'num', text: m.queued}),
          el('td', {class: 'num', text: m.running}), el('td', {class: 'num', text: seconds(m.eta)})))
          : el('tr', {}, el('td', {class: 'muted', colspan: 4, text: 'Nothing queued or running.'})))),
    ]);
    render('queue', {list, notShown, admin: who && who.admin}, () => [
      list.length ? el('table', {'data-table': 'queued'},
        el('thead', {}, el('tr', {}, el('th', {class: 'num', text: '#'}), el('th', {text: 'job'}),
          el('th', {text: 'model'}), el('th', {text: 'priority'}), el('th', {class: 'num', text: 'waited'}),
          el('th', {class: 'num', text: 'ETA'}), el('th', {text: 'waiting for'}),
          who && who.admin ? el('th', {}) : null)),
        el('tbody', {}, list.map((j) => el('tr', {'data-job': j.id},
          el('td', {class: 'num', text: j.position}), el('td', {text: j.id}), el('td', {text: j.model}),
          el('td', {class: 'p-' + j.priority, text: j.priority}), el('td', {class: 'num', text: seconds(j.waited)}),
          el('td', {class: 'num', 'data-field': 'eta', text: seconds(j.eta)}),
          el('td', {class: 'wrap', text: j.reason || ''}),
          who && who.admin ? el('td', {}, cancelButton(j.id)) : null))))
        : el('p', {class: 'muted', text: 'The queue is empty.'}),
      notShown > 0 ? el('p', {class: 'muted', text: `and ${notShown} more queued`}) : null,
    ]);
  }

  function cancelButton(id) {
    return el('button', {type: 'button', class: 'danger', 'data-op': 'cancel', 'data-job': id, text: 'Cancel'});
  }

  function drawRunning(jobs) {
    const list = jobs.map((j) => ({id: j.job_id, model: j.model, priority: j.priority,
      status: j.status, elapsed: Math.round(since(j.started_at) ?? since(j.submitted_at) ?? 0),
      attempts: j.attempts}));
    render('running', {list, admin: who && who.admin}, () => list.length
      ? el('table', {'data-table': 'running'},
        el('thead', {}, el('tr', {}, el('th', {text: 'job'}), el('th', {text: 'model'}),
          el('th', {text: 'priority'}), el('th', {text: 'status'}), el('th', {class: 'num', text: 'for'}),
          who && who.admin ? el('th', {}) : null)),
        el('tbody', {}, list.map((j) => el('tr', {'data-job': j.id},
          el('td', {text: j.id}), el('td', {text: j.model}), el('td', {class: 'p-' + j.priority, text: j.priority}),
          el('td', {text: j.status + (j.attempts > 1 ? ` (try ${j.attempts})` : '')}),
          el('td', {class: 'num', text: seconds(j.elapsed)}),
          who && who.admin ? el('td', {}, cancelButton(j.id)) : null))))
      : el('p', {class: 'muted', text: 'No job is running.'}));
  }

  // --- Events (Server-Sent Events over fetch, so the API key header goes along) -------

  async function followEvents() {
    const ctl = new AbortController();
    eventsAbort = ctl;
    $('events-state').textContent = '';
    try {
      const r = await fetch('/api/events', {headers: authHeaders({Accept: 'text/event-stream'}),
        signal: ctl.signal, cache: 'no-store'});
      if (!r.ok) throw new ApiError(r.status, `HTTP ${r.status}`);
      setConn('live', 'live');
      const reader = r.body.getReader();
      const decoder = new TextDecoder();
      let buf = '';
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buf += decoder.decode(value, {stream: true});
        let end;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const data = frame.split('\n').filter((l) => l.startsWith('data:'))
            .map((l) => l.slice(5).replace(/^ /, '')).join('\n');
          if (data) onEvent(data);
        }
      }
    } catch (e) {
      if (ctl.signal.aborted) return;
      $('events-state').textContent = `(stream lost: ${e.message})`;
    }
    if (ctl.signal.aborted || eventsAbort !== ctl) return;
    setConn('down', 'reconnecting');
    setTimeout(() => {
      if (eventsAbort === ctl) followEvents();
    }, 2000);
  }

  function onEvent(text) {
    let ev;
    try {
      ev = JSON.parse(text);
    } catch (e) {
      return;
    }
    const list = $('events');
    list.prepend(el('li', {class: 't-' + ev.type, 'data-type': ev.type},
      el('time', {datetime: ev.time, text: clock(ev.time)}),
      el('span', {class: 'type', text: ev.type}),
      el('span', {class: 'msg', text: ev.message || ''})));
    while (list.children.length > MAX_EVENTS) list.lastChild.remove();
    refreshSoon();
  }

  // --- Admin actions ------------------------------------------------------------------

  async function act(op, model, node, job) {
    try {
      if (op === 'cancel') {
        if (!confirm(`Cancel job ${job}?`)) return;
        await api('DELETE', '/api/job/' + encodeURIComponent(job));
        notice(`Job ${job} cancelled.`, true);
      } else {
        const body = {model, timeout: 0};
        if (node) body.node = node;
        const r = await api('POST', '/api/models/' + op, body);
        const what = op === 'unload' ? 'unload' : 'move to GPU';
        notice(`${model}: ${what} ${r && r.done ? 'done' : 'under way'}.`, true);
      }
    } catch (e) {
      notice(e.message);
    }
    refreshSoon();
  }

  document.addEventListener('click', (e) => {
    const b = e.target.closest('button[data-op]');
    if (!b || !who || !who.admin) return;
    if (b.closest('#model-actions'))
      act(b.dataset.op, $('action-model').value, $('action-node').value, null);
    else
      act(b.dataset.op, b.dataset.model, b.dataset.node, b.dataset.job);
  });

  $('key-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const key = $('key-input').value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_STORE, key);
    $('key-input').value = '';
    start();
  });

  $('key-forget').addEventListener('click', () => {
    sessionStorage.removeItem(KEY_STORE);
    start();
  });

  start();
})();
