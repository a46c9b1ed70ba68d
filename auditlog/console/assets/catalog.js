// catalog.js shows the event catalogue (GET /catalog.json): every event
// by service, audited or not, its publisher, payload schema and the
// fields that hold personal data.

import {h, clear} from './dom.js';

let loaded;

// load fetches the catalogue once.
export function load() {
  loaded ??= fetch('/catalog.json', {headers: {Accept: 'application/json'}}).then((r) => {
    if (!r.ok) throw new Error('GET /catalog.json: ' + r.status);
    return r.json();
  });
  return loaded;
}

// render lists the services and their events matching find.
export function render(host, cat, find) {
  clear(host);
  const q = (find || '').trim().toLowerCase();
  for (const svc of cat.services) {
    const events = cat.events.filter((e) => e.service === svc.id &&
      (!q || e.name.toLowerCase().includes(q) || (e.description || '').toLowerCase().includes(q)));
    if (events.length === 0) continue;
    host.append(h('section', {class: 'service', 'aria-label': svc.title},
      h('h2', {}, svc.title, ' ', h('span', {class: 'badge'}, svc.id)),
      h('p', {}, svc.about || ''),
      events.map(event)));
  }
  if (!host.firstChild) host.append(h('p', {}, 'No event matches.'));
}

function event(e) {
  const publisher = e.serviceNames?.length ? 'published as serviceName ' + e.serviceNames.join(', ') : 'published with no serviceName';
  return h('article', {class: 'event'},
    h('h3', {}, e.name,
      e.audited ? h('span', {class: 'badge audited'}, 'audited') : h('span', {class: 'badge'}, 'not audited'),
      h('span', {class: 'badge'}, e.kind + (e.aliasOf ? ' of ' + e.aliasOf : '')),
      e.personalData?.length ? h('span', {class: 'badge personal'}, 'personal data') : null),
    h('p', {}, e.description || ''),
    h('p', {}, publisher, e.consumers?.length ? '; consumed by ' + e.consumers.join(', ') : ''),
    h('p', {}, 'Personal data: ', e.personalData?.length ? e.personalData.join(', ') : 'none'),
    h('details', {}, h('summary', {}, 'Payload schema'), h('pre', {}, JSON.stringify(e.schema, null, 2))));
}
