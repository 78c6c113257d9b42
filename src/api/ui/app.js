// nimbus-ha dashboard: reads /status (every second), /availability (every minute) and /events/stream
// (Server-Sent Events) of the node that served it. While that node does not answer, it keeps the last
// view, says so, and links to the peer's dashboard (the peer's URLs come from the last status). Admin
// actions need the admin token, kept in this tab's sessionStorage and sent as a bearer header to /admin.
'use strict';

const TOKEN_KEY = 'nimbus-ha.adminToken';
const POLL_MS = 1000;
const $ = (id) => document.getElementById(id);

/** @type {Record<string, any> | null} */
let last = null;
let ownFailures = 0;
let lastOkAt = 0;
/** The peers' sidecar URLs, from the last status of this node (links to their dashboards). */
let peerUrls = [];
let stream = null;
const events = [];
const seen = new Set();
let chart = null;

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = String(v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(typeof c === 'string' ? document.createTextNode(c) : c);
  return e;
}

function fmtBytes(n) {
  if (n === null || n === undefined) return '–';
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

function ago(iso) {
  if (!iso) return 'never';
  const s = (Date.now() - Date.parse(iso)) / 1000;
  if (!Number.isFinite(s)) return String(iso);
  if (s < 1) return 'just now';
  if (s < 120) return `${Math.round(s)} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

async function getJson(url, timeoutMs = 1500) {
  const ctl = new AbortController();
  const t = setTimeout(() => ctl.abort(), timeoutMs);
  try {
    const r = await fetch(url, { signal: ctl.signal, cache: 'no-store' });
    if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
    return await r.json();
  } finally {
    clearTimeout(t);
  }
}

// -- status of this node; while it does not answer, the last view and the peer's dashboard --

async function poll() {
  try {
    const status = await getJson('/status');
    ownFailures = 0;
    peerUrls = (status.peers ?? []).flatMap((p) => (p.urls ?? []).slice(0, 1).map((u) => ({ node: p.node, url: u })));
    lastOkAt = Date.now();
    last = status;
    render(status);
    ensureStream();
  } catch {
    ownFailures++;
    if (ownFailures < 2) return;
    document.body.classList.add('stale');
    const b = banner(`${last?.node ?? 'This node'} does not answer (last answer ${lastOkAt ? `${Math.round((Date.now() - lastOkAt) / 1000)} s` : 'never'} ago): the view below is the last one seen.`, 'bad');
    for (const p of peerUrls) b.append(' ', el('a', { href: `${p.url}/ui`, 'data-peer': p.node, text: `Open ${p.node}'s dashboard` }), '.');
  }
}

function banner(text, cls = '') {
  const b = $('banner');
  b.hidden = !text;
  b.className = `banner ${cls}`;
  b.textContent = text ?? '';
  return b;
}

function heartbeatColor(ageMs, t) {
  if (ageMs === null || ageMs === undefined) return 'red';
  if (ageMs < 2 * t.heartbeatMs) return 'green';
  if (ageMs < t.deadAfterMs) return 'amber';
  return 'red';
}

function roleBadge(role, alive = true) {
  const r = alive ? role ?? 'unknown' : 'dead';
  return el('span', { class: `badge ${r}`, 'data-role': r, text: alive ? r : `dead (was ${role ?? 'unknown'})` });
}

function render(s) {
  const t = s.timings ?? { heartbeatMs: 100, deadAfterMs: 500, leaseMs: 700 };
  const viewedFrom = s.node;
  $('cluster-name').textContent = `· ${[s.node, ...(s.peers ?? []).map((p) => p.node)].join(' + ')}`;
  $('source').textContent = `view of ${viewedFrom}`;
  document.body.classList.remove('stale');
  banner('');

  // nodes
  const cards = [];
  const lease = s.lease && s.role === 'primary' ? `lease ${s.lease.remaining_ms ?? '–'} ms left, ${s.lease.votes}/${s.lease.voters} votes` : 'no lease (not primary)';
  cards.push(
    el(
      'div',
      { class: 'card', 'data-node': s.node, 'data-role': s.role },
      el('h3', {}, `${s.node} `, roleBadge(s.role), s.maintenance ? el('span', { class: 'badge starting', text: 'maintenance' }) : null),
      el('div', { text: `epoch ${s.epoch} · ${s.healthy ? 'healthy' : 'UNHEALTHY'} · up ${Math.round((s.uptime_ms ?? 0) / 1000)} s` }),
      el('div', { class: 'muted', text: lease }),
      el('div', { class: 'muted', text: s.reason ?? '' }),
    ),
  );
  for (const p of s.peers ?? []) {
    const paths = (p.paths ?? []).map((x) =>
      el('div', {}, el('span', { class: `dot ${heartbeatColor(x.age_ms, t)}`, title: x.last_error ?? '' }), `${x.url}: ${x.age_ms === null ? 'never answered' : `${x.age_ms} ms ago`}`),
    );
    cards.push(
      el(
        'div',
        { class: `card${p.alive ? '' : ' dead'}`, 'data-node': p.node, 'data-role': p.alive ? p.role ?? 'unknown' : 'dead' },
        el('h3', {}, `${p.node} `, roleBadge(p.role, p.alive)),
        el('div', { text: `${p.alive ? '' : 'last known: '}epoch ${p.epoch ?? '–'} · ${p.healthy === false ? 'UNHEALTHY' : p.healthy ? 'healthy' : '–'} · ${p.caught_up ? 'caught up' : 'not caught up'}` }),
        el('div', { class: 'muted', text: `last heard ${p.last_seen_ms === null ? 'never' : `${p.last_seen_ms} ms ago`}` }),
        ...paths,
        ...(p.urls ?? []).slice(0, 1).map((u) => el('div', {}, el('a', { href: `${u}/ui`, text: `${p.node}'s dashboard` }))),
      ),
    );
  }
  if (s.witness) {
    const w = s.witness;
    const a = w.last_answer;
    cards.push(
      el(
        'div',
        { class: 'card', 'data-node': 'witness', 'data-kind': w.kind ?? 'witness' },
        el('h3', {}, `${w.kind ?? 'witness'} `, el('span', { class: `dot ${w.last_error ? 'red' : a && s.role === 'primary' ? heartbeatColor(w.age_ms, t) : 'grey'}`, title: s.role === 'primary' ? '' : `the primary renews its lease with the ${w.kind ?? 'witness'}; a standby asks it only to take over` })),
        el('div', { class: 'muted', text: `${w.url}${w.health ? ` · ${w.health}` : ''}` }),
        el('div', { text: w.last_error ? `error: ${w.last_error}` : a ? `epoch ${a.epoch}, holder ${a.holder ?? '–'}` : s.role === 'primary' ? 'not asked yet' : 'not asked by a standby' }),
        el('div', { class: 'muted', text: `answered ${w.age_ms === null ? 'never' : `${w.age_ms} ms ago`}` }),
      ),
    );
  }
  $('nodes').replaceChildren(...cards);
  const peer = (s.peers ?? [])[0];
  const holder = s.vip?.held ? s.node : peer && peer.alive && peer.role === 'primary' ? peer.node : null;
  $('vip').textContent = s.vip ? `VIP ${s.vip.address}: held by ${holder ?? 'nobody'}` : 'no VIP configured';
  $('vip').dataset.holder = holder ?? '';

  // data paths
  const names = [...new Set([...Object.keys(s.replication ?? {}), ...Object.keys(peer?.replication ?? {})])].sort();
  $('paths').tBodies[0].replaceChildren(
    ...names.map((n) => el('tr', {}, el('th', { text: n }), el('td', { text: summarize(n, s.replication?.[n]) }), el('td', { text: peer ? (peer.alive ? summarize(n, peer.replication?.[n]) : 'dead') : '–' }))),
  );
  if (!names.length) $('paths').tBodies[0].replaceChildren(el('tr', {}, el('td', { colspan: 3, class: 'muted', text: 'no data paths configured' })));

  // services
  const rows = (s.services ?? []).map((x) =>
    el('tr', {}, el('td', { text: s.node }), el('td', { text: x.name }), el('td', { class: x.healthy ? 'ok' : 'bad', text: x.escalated ? 'escalated' : x.healthy ? 'up' : 'failing' }), el('td', { text: x.restartsInWindow ?? 0 }), el('td', { text: x.lastProbe?.error ?? x.lastReason ?? '' })),
  );
  $('services').tBodies[0].replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 5, class: 'muted', text: 'no monitored services on this node' }))]));

  // actions: switchover and fail-back go to the primary; maintenance to either node
  const token = sessionStorage.getItem(TOKEN_KEY);
  $('actions').hidden = !token;
  $('unlock').hidden = !!token;
  $('token').hidden = !!token;
  $('lock').hidden = !token;
  for (const b of document.querySelectorAll('#actions button')) {
    const planned = b.dataset.action === 'switchover' || b.dataset.action === 'failback';
    b.disabled = planned && s.role !== 'primary';
    b.title = planned && s.role !== 'primary' ? `sent to the primary: open ${peer?.node ?? 'its'} dashboard` : '';
  }
}

/** One line for a data path's status (this node's full status or the peer's heartbeat summary). */
function summarize(name, r) {
  if (!r) return '–';
  const parts = [];
  const err = r.last_error ?? r.lastError ?? null;
  if (name === 'db') {
    parts.push(`${r.role ?? r.mode ?? '?'}${r.sync ? ` (${r.sync})` : ''}`);
    if (r.sync === 'sync' && r.standby_holds === false) parts.push('DEGRADED: commits do not wait for the standby');
    if (r.timeline !== undefined) parts.push(`timeline ${r.timeline}`);
    if (r.streaming !== undefined && r.streaming !== null) parts.push(r.streaming ? 'streaming' : 'NOT streaming');
    if (r.lag_bytes !== undefined && r.lag_bytes !== null) parts.push(`lag ${fmtBytes(r.lag_bytes)}${r.lag_ms !== undefined && r.lag_ms !== null ? ` / ${r.lag_ms} ms` : ''}`);
    if (r.archive_bytes !== undefined && r.archive_bytes !== null) parts.push(`archive ${fmtBytes(r.archive_bytes)}`);
  } else if (name === 'repo') {
    parts.push(`${r.role ?? '?'}${r.mode ? ` (${r.mode})` : ''}`);
    if (r.objectsBehind !== undefined) parts.push(`${r.objectsBehind} objects behind${r.bytesBehind ? ` (${fmtBytes(r.bytesBehind)})` : ''}`);
    if (r.lastPassAt !== undefined) parts.push(`last pass ${ago(r.lastPassAt)}`);
    if (r.guard?.held || r.deletesHeld) parts.push(`delete guard holding ${r.guard?.held ?? r.deletesHeld}`);
  } else if (name === 'files') {
    parts.push(r.role ?? '?');
    if (r.filesBehind !== undefined) parts.push(`${r.filesBehind} files behind`);
    const change = r.lastShipAt ?? r.lastAppliedAt;
    if (change !== undefined) parts.push(`last change ${ago(change)}`);
    if (r.deletesHeld) parts.push(`${r.deletesHeld} deletes held by the guard`);
  } else {
    for (const [k, v] of Object.entries(r)) if (v !== null && typeof v !== 'object') parts.push(`${k} ${v}`);
  }
  if (r.ok === false) parts.push('NOT OK');
  if (err) parts.push(`error: ${err}`);
  return parts.join(' · ');
}

// -- events: Server-Sent Events from the node the view comes from --

const TAKEOVERS = new Set(['failover', 'switchover', 'failback', 'promoted']);
/** Takeovers from a primary that served clients (not the cluster's first primary, `promoted`). */
const MOVES = new Set(['failover', 'switchover', 'failback']);

/** When the stream was last opened (a closed one is opened again at most every 5 s). */
let streamOpenedAt = 0;

function ensureStream() {
  // EventSource reconnects by itself after a network error, resuming from the last id; after an answer
  // other than 200 (503 TOO_MANY_STREAMS, a proxy's 502) it gives up: open a new one, not too often.
  if (stream && stream.readyState !== EventSource.CLOSED) return;
  if (Date.now() - streamOpenedAt < 5000) return;
  stream?.close();
  streamOpenedAt = Date.now();
  stream = new EventSource('/events/stream?backlog=200');
  stream.onopen = () => ($('stream-state').textContent = `live from ${last?.node ?? 'this node'}`);
  stream.onerror = () => ($('stream-state').textContent = stream?.readyState === EventSource.CLOSED ? 'disconnected; retrying in a few seconds…' : 'reconnecting…');
  stream.onmessage = (m) => {
    let e;
    try {
      e = JSON.parse(m.data);
    } catch {
      return;
    }
    // The id is unique per event of this node (boot and sequence number); a replay after a reconnect
    // repeats some, which are shown once.
    const key = m.lastEventId || `${e.node}|${e.time}|${e.type}|${e.message}`;
    if (seen.has(key)) return;
    seen.add(key);
    e.key = key;
    events.push(e);
    if (events.length > 500) seen.delete(events.shift().key);
    scheduleRender();
    if (TAKEOVERS.has(e.type) || e.type === 'role_changed' || e.type === 'fenced') void poll();
    // Not at the takeover itself: the node is busy then, and every open page would ask at once.
    if (MOVES.has(e.type) || e.type === 'service_failed' || e.type === 'service_recovered') setTimeout(() => void loadAvailability(), 5000 + Math.random() * 5000);
  };
}

let renderTimer = null;
/** Many events at once (the backlog, a busy minute) are drawn once, not once each. */
function scheduleRender() {
  renderTimer ??= setTimeout(() => {
    renderTimer = null;
    renderEvents();
  }, 100);
}

/** Peer silent (or handover asked) → VIP up: detection plus what followed it, as the event reports them. */
function gapOf(e) {
  const d = e.details ?? {};
  const n = (x) => (typeof x === 'number' ? x : 0);
  if (typeof d.since_peer_dead_ms === 'number') return n(d.detect_ms) + d.since_peer_dead_ms;
  const parts = [d.detect_ms, d.election_ms, d.promote_ms, d.vip_ms].filter((x) => typeof x === 'number');
  return parts.length ? parts.reduce((a, b) => a + b, 0) : null;
}

function renderEvents() {
  const list = [...events].sort((a, b) => (a.time < b.time ? 1 : -1)).slice(0, 300);
  $('events').replaceChildren(
    ...list.map((e) => {
      const li = el('li', { class: `${e.severity}${TAKEOVERS.has(e.type) ? ' report' : ''}`, 'data-type': e.type, text: `${e.time.slice(11, 23)} ${e.node} ${e.type}: ${e.message}` });
      if (TAKEOVERS.has(e.type)) li.addEventListener('click', () => showReport(e));
      return li;
    }),
  );
  renderGaps();
}

function showReport(e) {
  const d = e.details ?? {};
  const data = d.data_at_takeover ?? {};
  const rows = [
    ['what', `${e.type} on ${e.node} at ${e.time} (epoch ${d.epoch_before ?? '?'} → ${d.epoch_after ?? e.epoch})`],
    ['detect (peer silent → declared dead)', d.detect_ms === null || d.detect_ms === undefined ? '–' : `${d.detect_ms} ms`],
    ['election', d.election_ms === null || d.election_ms === undefined ? '–' : `${d.election_ms} ms`],
    ['promote (data paths)', d.promote_ms === undefined ? '–' : `${d.promote_ms} ms`],
    ['VIP', d.vip_ms === undefined ? '–' : `${d.vip_ms} ms`],
    ['client gap (peer silent → VIP up)', gapOf(e) === null ? '–' : `${gapOf(e)} ms`],
    ['database lag at takeover (WAL not yet replayed)', data.db ? fmtBytes(data.db.lag_bytes) : '–'],
    ['images not yet copied at takeover', data.repo?.objectsBehind ?? '–'],
    ['config files not yet received at takeover', data.files?.filesBehind ?? '–'],
  ];
  const r = $('report');
  r.hidden = false;
  r.replaceChildren(
    el('strong', { text: `${e.type} report` }),
    ' ',
    el('button', { type: 'button', id: 'report-close', text: 'close' }),
    el('table', {}, el('tbody', {}, ...rows.map(([k, v]) => el('tr', {}, el('th', { text: k }), el('td', { text: v }))))),
  );
  $('report-close').addEventListener('click', () => (r.hidden = true));
}

// -- availability: the model and this node's history; a chart of recent failover gaps --

async function loadAvailability() {
  try {
    const a = await getJson('/availability', 5000);
    const pct = (x) => (x === null || x === undefined ? 'n/a' : `${(x * 100).toFixed(5)} %`);
    const o = a.observed;
    $('availability').replaceChildren(
      el(
        'table',
        {},
        el('thead', {}, el('tr', {}, el('th', { text: '' }), el('th', { text: 'availability' }), el('th', { text: 'downtime per year' }))),
        el(
          'tbody',
          {},
          ...[a.model.single, a.model.pair].map((m) => el('tr', {}, el('td', { text: `model: ${m.name}` }), el('td', { text: pct(m.availability) }), el('td', { text: `${(m.downtimeHoursPerYear * 60).toFixed(1)} min` }))),
          el('tr', {}, el('td', { text: `observed on ${last?.node ?? 'this node'} (${o.windowHours.toFixed(2)} h of history, ${o.failures} outages)` }), el('td', { text: pct(o.availability) }), el('td', { text: o.mttrHours === null ? '–' : `MTTR ${(o.mttrHours * 3600).toFixed(2)} s` })),
        ),
      ),
    );
  } catch (err) {
    $('availability').textContent = `availability not available: ${err.message}`;
  }
}

function renderGaps() {
  const pts = events
    .filter((e) => MOVES.has(e.type) && gapOf(e) !== null)
    .sort((a, b) => (a.time < b.time ? -1 : 1))
    .slice(-30);
  const host = $('gaps-chart');
  if (!pts.length) {
    chart?.destroy();
    chart = null;
    host.replaceChildren(el('p', { class: 'muted', text: 'no failover or switchover in the events shown yet' }));
    return;
  }
  // One point per takeover, in order, labelled with its time and kind (x is the takeover's index).
  const labels = pts.map((e) => `${e.time.slice(11, 19)} ${e.type}`);
  const data = [pts.map((_, i) => i), pts.map((e) => gapOf(e))];
  host.dataset.points = String(pts.length);
  if (typeof uPlot === 'undefined') {
    host.textContent = `recent gaps (ms): ${data[1].join(', ')}`;
    return;
  }
  chart?.destroy();
  host.replaceChildren();
  chart = new uPlot(
    {
      title: 'client gap of recent takeovers on this node (ms)',
      width: Math.min(760, host.clientWidth || 760),
      height: 180,
      scales: { x: { time: false, range: (_u, min, max) => [min - 0.5, max + 0.5] }, y: { range: (_u, _min, max) => [0, Math.max(100, max * 1.2)] } },
      series: [
        { label: 'takeover', value: (_u, v) => (v === null || v === undefined ? '--' : labels[v] ?? '') },
        { label: 'gap ms', stroke: '#1f5fbf', width: 0, points: { show: true, size: 8, fill: '#1f5fbf' }, paths: () => null },
      ],
      axes: [{ splits: () => data[0], values: (_u, vals) => vals.map((v) => (labels[v] ?? '').slice(0, 8)) }, { label: 'ms' }],
    },
    data,
    host,
  );
}

// -- admin actions --

async function act(action) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token || !last) return;
  const peer = (last.peers ?? [])[0];
  const what = {
    switchover: [`Hand the primary role from ${last.node} to ${peer?.node ?? 'the peer'}?`, '/admin/switchover', {}],
    failback: ['Fail back to the preferred node?', '/admin/failback', {}],
    'maintenance-on': ['Pause automation (promotion, handover, service restarts) on both nodes?', '/admin/maintenance', { on: true }],
    'maintenance-off': ['Resume automation on both nodes?', '/admin/maintenance', { on: false }],
  }[action];
  if (!what) return;
  const ok = await confirmDialog(what[0]);
  if (!ok) return;
  const out = $('action-result');
  out.className = '';
  out.textContent = `${action}: sending…`;
  try {
    const r = await fetch(what[1], { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(what[2]) });
    const body = await r.json().catch(() => ({}));
    if (r.status === 401 || r.status === 429) {
      out.className = 'bad';
      out.textContent = `${action} refused: the admin token was not accepted (${r.status}); nothing was changed`;
      return;
    }
    if (!r.ok && r.status !== 202) {
      out.className = 'bad';
      out.textContent = `${action} refused: ${body.message ?? `HTTP ${r.status}`}`;
      return;
    }
    out.textContent = `${action}: ${body.message ?? body.state}`;
    if (r.status === 202 && body.id) await follow(action, body.id, token);
  } catch (err) {
    out.className = 'bad';
    out.textContent = `${action} failed: ${err.message}`;
  }
}

async function follow(action, id, token) {
  const out = $('action-result');
  const until = Date.now() + 120_000;
  while (Date.now() < until) {
    await new Promise((r) => setTimeout(r, 500));
    const r = await fetch(`/admin/requests/${encodeURIComponent(id)}`, { headers: { authorization: `Bearer ${token}` } }).catch(() => null);
    if (!r) {
      out.textContent = `${action}: this node stopped answering while the request ran (a handover restarts nothing here; check the events)`;
      return;
    }
    const rec = await r.json().catch(() => ({}));
    if (!r.ok) {
      out.className = 'bad';
      out.textContent = `${action}: this node no longer knows request ${id} (${rec.message ?? `HTTP ${r.status}`}); see the events`;
      return;
    }
    out.className = rec.state === 'refused' ? 'bad' : '';
    out.textContent = `${action}: ${rec.state}${rec.message ? ` — ${rec.message}` : ''}`;
    if (rec.state === 'done' || rec.state === 'refused') return;
  }
}

function confirmDialog(text) {
  const d = $('confirm');
  $('confirm-text').textContent = text;
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
    d.showModal();
  });
}

$('token-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const v = $('token').value.trim();
  if (!v) return;
  sessionStorage.setItem(TOKEN_KEY, v);
  $('token').value = '';
  if (last) render(last);
});
$('lock').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  if (last) render(last);
});
for (const b of document.querySelectorAll('#actions button')) b.addEventListener('click', () => void act(b.dataset.action));

// Bounded by the page's life: one poll at a time, every second.
async function loop() {
  await poll();
  setTimeout(loop, POLL_MS);
}
void loop();
void loadAvailability();
setInterval(() => void loadAvailability(), 60_000);
