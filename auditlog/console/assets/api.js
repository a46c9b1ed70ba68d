// api.js talks to the audit log's API the page is served beside, with the
// bearer token the user pasted: kept in sessionStorage (this tab only) and
// sent as a header, never in a URL.

import {read} from './sse.js';

const KEY = 'herald.token';

export const token = {
  get: () => sessionStorage.getItem(KEY) || '',
  set: (t) => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

// APIError is an error answer: its status and the API's message.
export class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function headers(accept) {
  const h = {Accept: accept};
  const t = token.get();
  if (t) h.Authorization = 'Bearer ' + t;
  return h;
}

async function failure(resp) {
  let msg = resp.statusText || 'HTTP ' + resp.status;
  try {
    const body = await resp.json();
    if (body?.errors?.[0]?.message) msg = body.errors[0].message;
  } catch { /* not an error body */ }
  return new APIError(resp.status, msg);
}

// get fetches path; it answers the Response for the statuses in ok, and
// throws an APIError for the others.
export async function get(path, {accept = 'application/json', ok = [200], signal} = {}) {
  const resp = await fetch(path, {headers: headers(accept), cache: 'no-store', signal});
  if (!ok.includes(resp.status)) throw await failure(resp);
  return resp;
}

export async function getJSON(path, opts) {
  return (await get(path, opts)).json();
}

// params turns the console's filters into GET /logs's query parameters.
export function params(f) {
  const p = new URLSearchParams();
  for (const k of ['service', 'name', 'tenant', 'user']) {
    if (f[k]) p.set(`filter[${k}]`, f[k]);
  }
  if (f.where) {
    const i = f.where.indexOf('=');
    if (i > 0) p.set(`filter[${f.where.slice(0, i).trim()}]`, f.where.slice(i + 1));
  }
  if (f.from) p.set('from', new Date(f.from).toISOString());
  if (f.to) p.set('to', new Date(f.to).toISOString());
  return p;
}

// listLogs returns one page of GET /logs: {data, meta, nextCursor}.
export function listLogs(filters, {size = 50, cursor} = {}) {
  const p = params(filters);
  p.set('page[size]', String(size));
  if (cursor) p.set('cursor', cursor);
  return getJSON('/logs?' + p);
}

// follow reads GET /logs/stream with the filters after position after
// (none: from now), calling on.ready(position), on.entry(entry, id) and
// on.close(reason, message). It resolves when the stream ends.
export async function follow(filters, after, on, signal) {
  const p = params(filters);
  if (after !== undefined && after !== null) p.set('lastEventId', String(after));
  const resp = await get('/logs/stream?' + p, {accept: 'text/event-stream', signal});
  await read(resp, (ev) => {
    if (ev.event === 'ready') on.ready?.(Number(ev.id));
    else if (ev.event === 'entry') on.entry?.(JSON.parse(ev.data), Number(ev.id));
    else if (ev.event === 'close') {
      let c = {};
      try { c = JSON.parse(ev.data); } catch { /* keep empty */ }
      on.close?.(c.reason || 'closed', c.message || '');
    }
  }, signal);
}
