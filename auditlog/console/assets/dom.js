// dom.js builds elements. Every value becomes a text node or an attribute
// through the DOM's own setters: nothing from an event is ever parsed as
// HTML.

const SVG = 'http://www.w3.org/2000/svg';

// h creates an element: h('td', {class: 'time'}, 'text', child, …).
export function h(tag, attrs = {}, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

// s creates an SVG element.
export function s(tag, attrs = {}, ...children) {
  return fill(document.createElementNS(SVG, tag), attrs, children);
}

function fill(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// clear removes an element's children.
export function clear(el) {
  el.replaceChildren();
  return el;
}

export const $ = (sel) => document.querySelector(sel);
