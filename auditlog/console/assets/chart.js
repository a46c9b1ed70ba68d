// chart.js draws the stored events per minute over a time range, by
// service, as stacked SVG bars: no charting library.

import {h, s, clear} from './dom.js';

const COLORS = ['#2f5bd3', '#e07a1f', '#1f9a6a', '#c2417a', '#7b55d9', '#8a8f1f', '#1f8fb0', '#b0462f', '#5a6b85', '#d1a21a'];
const BIN_MINUTES = [1, 5, 15, 60, 360, 1440];
const MAX_BINS = 180;

// render draws entries ({headers:{createdAt, serviceName}}) between from
// and to (Dates; the entries' own span when missing) into svgHost, its
// legend into legendHost, and returns the caption's text.
export function render(svgHost, legendHost, entries, from, to) {
  clear(svgHost);
  clear(legendHost);
  const times = entries.map((e) => Date.parse(e.headers.createdAt)).filter((t) => !Number.isNaN(t));
  if (times.length === 0) return 'No events in this range.';
  const min = Math.min(...times);
  const max = Math.max(...times);
  // Without a range: the half hour up to now, or the entries' own span
  // when it is longer, so a burst shows against the quiet before it.
  const end = to ? to.getTime() : Math.max(max + 1, Date.now());
  const start = from ? from.getTime() : Math.min(min, end - 30 * 60000);
  const binMinutes = BIN_MINUTES.find((m) => (end - start) / (m * 60000) <= MAX_BINS) ?? 1440;
  const bin = binMinutes * 60000;
  const first = Math.floor(start / bin) * bin;
  const n = Math.max(1, Math.ceil((end - first) / bin));

  const services = [...new Set(entries.map((e) => e.headers.serviceName || '(none)'))].sort();
  const color = new Map(services.map((sv, i) => [sv, COLORS[i % COLORS.length]]));
  const counts = Array.from({length: n}, () => new Map());
  for (const e of entries) {
    const t = Date.parse(e.headers.createdAt);
    const i = Math.floor((t - first) / bin);
    if (i < 0 || i >= n) continue;
    const sv = e.headers.serviceName || '(none)';
    counts[i].set(sv, (counts[i].get(sv) || 0) + 1);
  }
  const totals = counts.map((m) => [...m.values()].reduce((a, b) => a + b, 0));
  const top = Math.max(1, ...totals);

  const W = 1000, H = 140, L = 36, B = 18, T = 6;
  const bw = (W - L) / n;
  const y = (v) => T + (H - T - B) * (1 - v / top);
  const svg = s('svg', {viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img',
    'aria-label': `Events per ${binMinutes === 1 ? 'minute' : binMinutes + ' minutes'}, by service; at most ${top} in one bar`});
  svg.append(s('line', {class: 'axis', x1: L, y1: H - B, x2: W, y2: H - B}));
  svg.append(s('text', {x: 2, y: T + 8}, String(top)));
  svg.append(s('text', {x: 2, y: H - B}, '0'));
  for (let i = 0; i < n; i++) {
    let base = 0;
    const when = new Date(first + i * bin);
    for (const sv of services) {
      const c = counts[i].get(sv);
      if (!c) continue;
      const rect = s('rect', {x: L + i * bw + bw * 0.1, width: Math.max(bw * 0.8, 0.5), y: y(base + c), height: y(base) - y(base + c), fill: color.get(sv)});
      rect.append(s('title', {}, `${when.toLocaleString()}: ${c} from ${sv}`));
      svg.append(rect);
      base += c;
    }
  }
  for (const [i, t] of [[0, first], [n, first + n * bin]]) {
    svg.append(s('text', {x: Math.min(L + i * bw, W - 60), y: H - 4}, new Date(t).toLocaleTimeString([], {hour: '2-digit', minute: '2-digit'})));
  }
  svgHost.append(svg);
  for (const sv of services) {
    legendHost.append(h('li', {}, s('svg', {width: 10, height: 10, 'aria-hidden': 'true'}, s('rect', {width: 10, height: 10, fill: color.get(sv)})), sv));
  }
  return `Events per ${binMinutes === 1 ? 'minute' : binMinutes + ' minutes'}, by service`;
}
