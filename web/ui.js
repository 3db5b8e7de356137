// ui.js — building DOM without a framework: h() makes an element with attributes and children (text
// children become text nodes, so nothing a server sends is ever parsed as HTML).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// Replaces the children of el.
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// A region's or app's icon: Coder's "/emojis/<codepoints>.png" icons are drawn as the emoji itself (the
// primary serves no image files); other icons of the primary's origin as images; anything else as a globe.
export function icon(url, label = '') {
  const m = /^\/emojis\/([0-9a-f]+(?:-[0-9a-f]+)*)\.png$/i.exec(url || '');
  if (m) {
    const text = String.fromCodePoint(...m[1].split('-').map((x) => parseInt(x, 16)));
    return h('span', { class: 'icon', 'aria-hidden': 'true' }, text);
  }
  if (url && url.startsWith('/') && !url.startsWith('//')) {
    return h('img', { class: 'icon', src: url, alt: label });
  }
  return h('span', { class: 'icon', 'aria-hidden': 'true' }, '\u{1F310}');
}

export function formatLatency(report) {
  if (!report) return '—';
  return `${Math.round(report.latencyMS)} ms${report.accurate ? '' : ' (approx.)'}`;
}

export function errorText(err) {
  return err && err.message ? err.message : String(err);
}

// Re-renders el's children with build() only when key differs from the last one given for el, so that
// frequent model updates do not replace elements a user may be clicking.
export function keyed(el, key, build) {
  if (el.dataset.renderKey === key) return el;
  el.dataset.renderKey = key;
  return fill(el, build());
}
