// app.js is the console: sign-in, the audit table with its filters (kept
// in the URL's hash, never with the token), paging, the chart, live mode
// and the entry detail; and the catalogue.

import {h, clear, $} from './dom.js';
import * as api from './api.js';
import * as chart from './chart.js';
import * as catalog from './catalog.js';
import {checkInclusion} from './proof.js';

const FILTERS = ['service', 'name', 'tenant', 'user', 'where', 'from', 'to'];
const PAGE = 50;
const CHART_PAGES = 5; // the chart reads at most 5 pages of 1,000 entries

const state = {
  filters: {},
  cursors: [''], // the cursor of each page shown so far: newer is one back
  page: null,
  total: 0,
  live: null, // {abort, paused, held, position}
  chartEntries: [],
};

// --- routing -----------------------------------------------------------

function route() {
  const hash = location.hash.replace(/^#/, '') || '/logs';
  const [path, query = ''] = hash.split('?');
  return {path, query: new URLSearchParams(query)};
}

function show(id) {
  for (const s of ['signin', 'logs', 'catalog']) $('#' + s).hidden = s !== id;
  $('#nav-logs').toggleAttribute('aria-current', id === 'logs');
  $('#nav-catalog').toggleAttribute('aria-current', id === 'catalog');
  if (id === 'logs') $('#nav-logs').setAttribute('aria-current', 'page');
  if (id === 'catalog') $('#nav-catalog').setAttribute('aria-current', 'page');
  $('#sign-out').hidden = !api.token.get();
}

function notice(msg) {
  const n = $('#notice');
  n.textContent = msg || '';
  n.hidden = !msg;
}

async function render() {
  const {path, query} = route();
  notice('');
  if (path === '/catalog') {
    show('catalog');
    try {
      const cat = await catalog.load();
      catalog.render($('#catalog-list'), cat, $('#catalog-find').value);
    } catch (e) {
      notice('The catalogue could not be read: ' + e.message);
    }
    return;
  }
  if (!api.token.get()) {
    stopLive();
    show('signin');
    $('#token').focus();
    return;
  }
  show('logs');
  const filters = Object.fromEntries(FILTERS.map((k) => [k, query.get(k) || '']));
  const changed = JSON.stringify(filters) !== JSON.stringify(state.filters);
  state.filters = filters;
  const form = $('#filters');
  for (const k of FILTERS) form.elements[k].value = filters[k];
  if (changed || !state.page) {
    state.cursors = [''];
    stopLive();
    await Promise.all([loadPage(), loadChart()]);
    if (query.get('live') === '1') startLive();
  }
}

// --- sign-in -------------------------------------------------------------

function signedOut(message) {
  api.token.clear();
  stopLive();
  state.page = null;
  show('signin');
  notice(message);
}

function explain(e) {
  if (e.status === 401) {
    signedOut('The audit log refused the token (401): ' + e.message + ' Paste a valid token.');
    return true;
  }
  if (e.status === 403) {
    notice('This token may not read the audit log (403 ' + e.message + '): it needs the logs.read permission.');
    return true;
  }
  return false;
}

async function signIn(ev) {
  ev.preventDefault();
  const t = $('#token').value.trim();
  if (!t) return;
  api.token.set(t);
  $('#token').value = '';
  try {
    await api.listLogs({}, {size: 1});
  } catch (e) {
    if (e.status === 401) return signedOut('The audit log refused the token (401): ' + e.message);
    if (e.status === 403) {
      api.token.clear();
      show('signin');
      return notice('This token may not read the audit log (403 ' + e.message + '): it needs the logs.read permission.');
    }
    return notice('The audit log did not answer: ' + e.message);
  }
  state.page = null;
  state.filters = {};
  render();
}

// --- the table -----------------------------------------------------------

function payloadSummary(p) {
  if (!p || typeof p !== 'object') return '';
  return Object.entries(p).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join('  ');
}

function time(t) {
  if (!t) return '–';
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? String(t) : d.toLocaleString([], {dateStyle: 'short', timeStyle: 'medium'});
}

function row(e, fresh) {
  const tr = h('tr', {tabindex: '0', class: fresh ? 'new' : null, 'data-id': e.id ?? e._id},
    h('td', {class: 'time'}, time(e.headers?.createdAt)),
    h('td', {}, e.headers?.name ?? ''),
    h('td', {}, e.headers?.serviceName ?? ''),
    h('td', {}, e.payload?.user ?? ''),
    h('td', {}, e.payload?.tenant ?? ''),
    h('td', {class: 'payload'}, payloadSummary(e.payload)));
  const open = () => openDetail(e);
  tr.addEventListener('click', open);
  tr.addEventListener('keydown', (k) => {
    if (k.key === 'Enter' || k.key === ' ') {
      k.preventDefault();
      open();
    }
  });
  return tr;
}

function summary() {
  const n = state.page ? state.cursors.length : 0;
  const pages = Math.max(1, Math.ceil(state.total / PAGE));
  $('#summary').textContent = `${state.total.toLocaleString()} ${state.total === 1 ? 'entry' : 'entries'}`;
  $('#page').textContent = `page ${n} of ${pages}`;
  $('#newer').disabled = state.cursors.length <= 1;
  $('#older').disabled = !state.page?.nextCursor;
}

async function loadPage() {
  const body = $('#entries tbody');
  try {
    const cursor = state.cursors[state.cursors.length - 1];
    state.page = await api.listLogs(state.filters, {size: PAGE, cursor});
    state.total = state.page.meta.total;
  } catch (e) {
    if (!explain(e)) notice('The audit log refused the query: ' + e.message);
    state.page = {data: [], meta: {total: 0}};
    state.total = 0;
  }
  clear(body);
  for (const e of state.page.data) body.append(row(e, false));
  if (state.page.data.length === 0) body.append(h('tr', {}, h('td', {class: 'empty', colspan: '6'}, 'No entries.')));
  summary();
}

async function loadChart() {
  const entries = [];
  try {
    let cursor = '';
    for (let i = 0; i < CHART_PAGES; i++) {
      const p = await api.listLogs(state.filters, {size: 1000, cursor});
      entries.push(...p.data);
      if (!p.nextCursor) break;
      cursor = p.nextCursor;
    }
  } catch {
    // The table says what went wrong.
  }
  state.chartEntries = entries;
  drawChart();
}

function drawChart() {
  const f = state.filters;
  let caption = chart.render($('#chart'), $('#legend'), state.chartEntries, f.from ? new Date(f.from) : null, f.to ? new Date(f.to) : null);
  if (state.total > state.chartEntries.length && state.chartEntries.length > 0) {
    caption += ` (the newest ${state.chartEntries.length.toLocaleString()} of ${state.total.toLocaleString()})`;
  }
  $('#chart-caption').textContent = caption;
}

function applyFilters(ev) {
  ev.preventDefault();
  const form = $('#filters');
  const q = new URLSearchParams();
  for (const k of FILTERS) {
    const v = form.elements[k].value.trim();
    if (v) q.set(k, v);
  }
  if (state.live) q.set('live', '1');
  const hash = '#/logs' + (q.size ? '?' + q : '');
  if (location.hash === hash) {
    state.page = null;
    render();
  } else {
    location.hash = hash;
  }
}

// --- live mode -----------------------------------------------------------

function liveState(text) {
  $('#live-state').textContent = text;
}

function startLive() {
  if (state.live) return;
  const live = {abort: new AbortController(), paused: false, held: [], position: undefined};
  state.live = live;
  $('#live').setAttribute('aria-pressed', 'true');
  $('#pause').hidden = false;
  $('#pause').setAttribute('aria-pressed', 'false');
  $('#pause').textContent = 'Pause';
  setLiveInHash(true);
  runLive(live);
}

async function runLive(live) {
  let wait = 1000;
  while (state.live === live) {
    liveState('connecting…');
    try {
      await api.follow(state.filters, live.position, {
        ready: (pos) => {
          live.position = pos;
          wait = 1000;
          liveState(live.paused ? 'paused' : 'live');
        },
        entry: (e, id) => {
          live.position = id;
          if (live.paused) {
            live.held.push(e);
            liveState(`paused: ${live.held.length} new`);
          } else {
            addLive([e]);
          }
        },
        close: (reason) => liveState('the server ended the stream (' + reason + '); reconnecting'),
      }, live.abort.signal);
    } catch (e) {
      if (state.live !== live) return;
      if (explain(e)) return stopLive();
      liveState('stream lost: ' + e.message + '; reconnecting');
    }
    if (state.live !== live) return;
    await new Promise((r) => setTimeout(r, wait));
    wait = Math.min(wait * 2, 15000);
  }
}

// addLive puts new entries at the top of the first page, newest first.
function addLive(entries) {
  state.total += entries.length;
  state.chartEntries.push(...entries);
  drawChart();
  if (state.cursors.length === 1) {
    const body = $('#entries tbody');
    body.querySelector('td.empty')?.parentElement.remove();
    for (const e of entries) body.prepend(row(e, true));
    while (body.rows.length > PAGE) body.lastElementChild.remove();
  }
  summary();
}

function stopLive() {
  if (!state.live) return;
  state.live.abort.abort();
  state.live = null;
  $('#live').setAttribute('aria-pressed', 'false');
  $('#pause').hidden = true;
  liveState('');
  setLiveInHash(false);
}

function togglePause() {
  const live = state.live;
  if (!live) return;
  live.paused = !live.paused;
  $('#pause').setAttribute('aria-pressed', String(live.paused));
  $('#pause').textContent = live.paused ? 'Resume' : 'Pause';
  if (!live.paused && live.held.length) {
    addLive(live.held.splice(0));
  }
  liveState(live.paused ? 'paused' : 'live');
}

function setLiveInHash(on) {
  const {path, query} = route();
  if (path !== '/logs') return;
  if (on) query.set('live', '1');
  else query.delete('live');
  history.replaceState(null, '', '#' + path + (query.size ? '?' + query : ''));
}

// --- the detail ----------------------------------------------------------

function openDetail(e) {
  const d = $('#detail');
  const id = e.id ?? e._id;
  $('#detail-title').textContent = e.headers?.name ?? 'Entry';
  const fields = clear($('#detail-fields'));
  const facts = [
    ['id', id], ['seq', e.seq], ['service', e.headers?.serviceName], ['created', time(e.headers?.createdAt)],
    ['received', time(e.receivedAt)], ['user', e.payload?.user], ['tenant', e.payload?.tenant],
    ['in the catalogue', e.unknown ? 'no' : 'yes'],
  ];
  if (e.leafIndex !== undefined) facts.push(['leaf index', e.leafIndex]);
  for (const [k, v] of facts) {
    if (v === undefined || v === null || v === '') continue;
    fields.append(h('dt', {}, k), h('dd', {}, String(v)));
  }
  $('#detail-payload').textContent = JSON.stringify(e.payload ?? {}, null, 2);
  $('#detail-raw').textContent = JSON.stringify(e, null, 2);
  const integrity = $('#integrity');
  integrity.className = 'integrity pending';
  integrity.textContent = 'checking the inclusion proof…';
  d.showModal();
  checkInclusion(id, api.get).then((r) => {
    if ($('#detail-raw').textContent !== JSON.stringify(e, null, 2)) return; // another entry is shown
    integrity.className = 'integrity ' + r.state;
    integrity.textContent = r.state === 'unavailable' ? 'integrity not available' : r.message;
    integrity.title = r.message;
  });
}

// --- wiring --------------------------------------------------------------

function init() {
  $('#signin-form').addEventListener('submit', signIn);
  $('#sign-out').addEventListener('click', () => {
    signedOut('');
    location.hash = '#/logs';
  });
  $('#filters').addEventListener('submit', applyFilters);
  $('#clear').addEventListener('click', () => {
    for (const k of FILTERS) $('#filters').elements[k].value = '';
    $('#filters').requestSubmit();
  });
  $('#older').addEventListener('click', () => {
    if (!state.page?.nextCursor) return;
    state.cursors.push(state.page.nextCursor);
    loadPage();
  });
  $('#newer').addEventListener('click', () => {
    if (state.cursors.length <= 1) return;
    state.cursors.pop();
    loadPage();
  });
  $('#live').addEventListener('click', () => (state.live ? stopLive() : startLive()));
  $('#pause').addEventListener('click', togglePause);
  $('#catalog-find').addEventListener('input', () => catalog.load().then((c) => catalog.render($('#catalog-list'), c, $('#catalog-find').value)));
  window.addEventListener('hashchange', render);
  catalog.load().then((cat) => {
    const names = clear($('#event-names'));
    for (const e of cat.events) if (!e.name.includes('*')) names.append(h('option', {value: e.name}));
    const services = clear($('#service-names'));
    for (const sn of [...new Set(cat.events.flatMap((e) => e.serviceNames || []))].sort()) services.append(h('option', {value: sn}));
  }).catch(() => { /* the name field still takes any name */ });
  render();
}

init();
