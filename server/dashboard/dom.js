// Small DOM helpers and formatters. Text always goes in as text nodes: nothing the API returns is parsed as HTML.

const SVG_NS = 'http://www.w3.org/2000/svg';

/** An element: `h('td', { class: 'num', onclick: fn }, 'text', child)`. */
export function h(tag, props = {}, ...children) {
  return fill(document.createElement(tag), props, children);
}

/** An SVG element, attributes set as given. */
export function s(tag, attrs = {}, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

function fill(el, props, children) {
  for (const [k, v] of Object.entries(props ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);

export function clear(el) {
  el.replaceChildren();
  return el;
}

/** `2024-05-01 14:03` in local time, from OpenAI's seconds since the epoch. */
export function fmtTime(seconds, withSeconds = false) {
  if (!seconds) return '—';
  const d = new Date(seconds * 1000);
  const p = (n) => String(n).padStart(2, '0');
  const day = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
  return `${day} ${p(d.getHours())}:${p(d.getMinutes())}${withSeconds ? `:${p(d.getSeconds())}` : ''}`;
}

export function fmtClock(seconds) {
  const d = new Date(seconds * 1000);
  return d.toTimeString().slice(0, 8);
}

/** Bytes as megabytes with three significant figures (`0.0421 MB`, `12.3 MB`, `1,204 MB`). */
export function fmtMB(bytes) {
  const mb = bytes / 1e6;
  if (mb >= 100) return `${Math.round(mb).toLocaleString('en-US')} MB`;
  if (mb === 0) return '0 MB';
  return `${Number(mb.toPrecision(3))} MB`;
}

/** A file size: `812 B`, `23.4 KB`, `1.07 MB`. */
export function fmtSize(bytes) {
  if (bytes < 1000) return `${bytes} B`;
  if (bytes < 1e6) return `${Number((bytes / 1e3).toPrecision(3))} KB`;
  return fmtMB(bytes);
}

/** An identifier that may wrap after its `:` separators (`ft:model:org:suffix:id`). */
export function breakable(text) {
  const out = document.createDocumentFragment();
  for (const part of String(text).split(/(?<=:)/)) out.append(part, document.createElement('wbr'));
  return out;
}

/** `1.2M`, `260K`, `812`. */
export function fmtCount(n) {
  if (n === null || n === undefined) return '—';
  if (n >= 1e9) return `${Number((n / 1e9).toPrecision(3))}B`;
  if (n >= 1e6) return `${Number((n / 1e6).toPrecision(3))}M`;
  if (n >= 1e4) return `${Number((n / 1e3).toPrecision(3))}K`;
  return n.toLocaleString('en-US');
}

export const fmtLoss = (x) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(4) : '—');
