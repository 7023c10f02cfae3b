// The web view of spoolctl serve (SPEC.md section 12): what every view
// shares: the page's settings, element building, the JSON API and its event
// stream. Text from the spool only ever goes in with textContent or text
// nodes, never as HTML.
export const STATES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];
export const TERMINAL = ['succeeded', 'failed', 'cancelled'];
const metaValue = (name) => {
  const m = document.querySelector('meta[name="' + name + '"]');
  return m ? m.getAttribute('content') : '';
};
export const token = metaValue('spoold-token');
export const readOnly = metaValue('spoold-mode') !== 'read-write';
// Why the page is read-only: "read-only", or "read-only: you are not USER".
export const modeNote = metaValue('spoold-note');
export const main = document.getElementById('main');

// The open view's clean-up (event sources, followed logs).
export const cleanups = [];
// The job list's filters, kept across views.
export const filters = {
  state: '',
  pool: '',
  tag: '',
  text: ''
};

// ---- small helpers ------------------------------------------------------

// el('td', {dataset: {col: 'state'}}, 'text', childNode): strings become
// text nodes.
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'dataset')
      Object.assign(node.dataset, value);
    else if (key === 'className')
      node.className = value;
    else if (key.startsWith('on'))
      node.addEventListener(key.slice(2), value);
    else
      node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(typeof child === 'string' || typeof child === 'number' ? String(child) : child);
  }
  return node;
}

export function text(value) {
  if (value === null || value === undefined) return '';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

export function age(iso) {
  if (!iso) return '';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  let s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 120) return s + 's';
  s = Math.round(s / 60);
  if (s < 120) return s + 'm';
  s = Math.round(s / 60);
  if (s < 48) return s + 'h';
  return Math.round(s / 24) + 'd';
}

export function size(bytes) {
  if (typeof bytes !== 'number') return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return (u === 0 ? String(v) : v.toFixed(1)) + ' ' + units[u];
}

// results.json's file:checksum is a sha256 multihash (1220 + hex): plain hex.
export function sha256Hex(checksum) {
  if (typeof checksum !== 'string') return '';
  return checksum.length === 68 && checksum.startsWith('1220') ? checksum.slice(4) : checksum;
}

// A results.json href as a download URL of /api/jobs/<id>/files/, or null
// for one that is not results/... or tasks/<index>/results/... of plain
// components (the server serves nothing else; a link elsewhere is refused).
export const RESULT_HREF = /^(tasks\/(0|[1-9][0-9]*)\/)?results\/./;
export function resultUrl(id, href) {
  if (typeof href !== 'string' || !RESULT_HREF.test(href)) return null;
  const parts = href.split('/');
  if (parts.some((p) => p === '' || p === '.' || p === '..')) return null;
  return apiJob(id) + '/files/' + parts.map(encodeURIComponent).join('/');
}

export function jobHref(id) {
  return '/jobs/' + encodeURIComponent(id);
}
export function apiJob(id) {
  return '/api/jobs/' + encodeURIComponent(id);
}

export function say(message, isError) {
  const box = document.getElementById('message');
  box.textContent = message || '';
  box.className = isError ? 'error' : '';
}

export async function getJson(url) {
  const res = await fetch(url, {headers: {Accept: 'application/json'}});
  const body = await res.json().catch(() => null);
  if (!res.ok) {
    const err = new Error(body && body.error ? body.error.message : url + ': HTTP ' + res.status);
    err.status = res.status;
    throw err;
  }
  return body;
}

export async function post(url) {
  const res = await fetch(url, {method: 'POST', headers: {'X-Spoold-Token': token}});
  const body = await res.json().catch(() => null);
  if (!res.ok) {
    say(body && body.error ? body.error.message : url + ': HTTP ' + res.status, true);
  } else {
    say(body ? (body.action || 'rerun') + ': ' + body.outcome + (body.id ? ' (' + body.id + ')' : '') :
               'done');
  }
  return body;
}

export function markReady() {
  document.body.dataset.ready = '1';
}

// A function that runs `fn` at most once at a time; calls made meanwhile
// run it once more afterwards.
export function serialized(fn) {
  let running = false;
  let again = false;
  return async function run() {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      await fn();
    } catch (e) {
      say(e.message, true);
    }
    running = false;
    if (again) {
      again = false;
      run();
    }
  };
}

// Server-Sent Events: `handlers` by event name; closed with the view or by
// the function returned. A browser reconnects by itself after a network
// error, but not after an answer other than 200 (404, 503): then `onClosed`.
export function listen(url, handlers, onClosed) {
  const source = new EventSource(url);
  const dot = document.getElementById('live');
  source.onopen = () => {
    dot.className = 'on';
  };
  source.onerror = () => {
    dot.className = 'off';
    if (source.readyState === EventSource.CLOSED && onClosed) onClosed();
  };
  for (const [name, fn] of Object.entries(handlers)) source.addEventListener(name, fn);
  const close = () => source.close();
  cleanups.push(close);
  return close;
}

export function actionButton(id, label, onclick) {
  if (readOnly) return null;
  return el('button', {id, className: 'action ' + id, type: 'button', onclick}, label);
}

// The router (app.js) that shows the view of the current location; navigate
// moves there without reloading.
let router = () => {};
export function setRouter(fn) {
  router = fn;
}
export function navigate(href) {
  history.pushState(null, '', href);
  router();
}
