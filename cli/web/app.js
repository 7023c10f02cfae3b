// The web view of spoolctl serve: one page that routes on location.pathname
// (/, /jobs/<id>, /pools) with history.pushState, reads the JSON API of
// SPEC.md section 12 and follows its Server-Sent Events. No framework, no
// build step. Text from the spool (titles, messages, logs) only ever goes in
// with textContent or text nodes, never as HTML.
'use strict';

(function() {
const STATES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];
const TERMINAL = ['succeeded', 'failed', 'cancelled'];
const metaValue = (name) => {
  const m = document.querySelector('meta[name="' + name + '"]');
  return m ? m.getAttribute('content') : '';
};
const token = metaValue('spoold-token');
const readOnly = metaValue('spoold-mode') !== 'read-write';
// Why the page is read-only: "read-only", or "read-only: you are not USER".
const modeNote = metaValue('spoold-note');
const main = document.getElementById('main');

// The open view's clean-up (event sources, followed logs).
let cleanups = [];
// The job list's filters, kept across views.
const filters = {
  state: '',
  pool: '',
  tag: '',
  text: ''
};

// ---- small helpers ------------------------------------------------------

// el('td', {dataset: {col: 'state'}}, 'text', childNode): strings become
// text nodes.
function el(tag, attrs, ...children) {
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

function text(value) {
  if (value === null || value === undefined) return '';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

function age(iso) {
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

function size(bytes) {
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
function sha256Hex(checksum) {
  if (typeof checksum !== 'string') return '';
  return checksum.length === 68 && checksum.startsWith('1220') ? checksum.slice(4) : checksum;
}

// A results.json href as a download URL of /api/jobs/<id>/files/, or null
// for one that is not results/... or tasks/<index>/results/... of plain
// components (the server serves nothing else; a link elsewhere is refused).
const RESULT_HREF = /^(tasks\/(0|[1-9][0-9]*)\/)?results\/./;
function resultUrl(id, href) {
  if (typeof href !== 'string' || !RESULT_HREF.test(href)) return null;
  const parts = href.split('/');
  if (parts.some((p) => p === '' || p === '.' || p === '..')) return null;
  return apiJob(id) + '/files/' + parts.map(encodeURIComponent).join('/');
}

function jobHref(id) {
  return '/jobs/' + encodeURIComponent(id);
}
function apiJob(id) {
  return '/api/jobs/' + encodeURIComponent(id);
}

function say(message, isError) {
  const box = document.getElementById('message');
  box.textContent = message || '';
  box.className = isError ? 'error' : '';
}

async function getJson(url) {
  const res = await fetch(url, {headers: {Accept: 'application/json'}});
  const body = await res.json().catch(() => null);
  if (!res.ok) {
    const err = new Error(body && body.error ? body.error.message : url + ': HTTP ' + res.status);
    err.status = res.status;
    throw err;
  }
  return body;
}

async function post(url) {
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

function markReady() {
  document.body.dataset.ready = '1';
}

// A function that runs `fn` at most once at a time; calls made meanwhile
// run it once more afterwards.
function serialized(fn) {
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
function listen(url, handlers, onClosed) {
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

function actionButton(id, label, onclick) {
  if (readOnly) return null;
  return el('button', {id, className: 'action ' + id, type: 'button', onclick}, label);
}

// ---- the job list -----------------------------------------------------------

function jobsView() {
  let index = null;
  const stateSel =
      el('select', {id: 'filter-state'}, el('option', {value: ''}, 'all states'),
         STATES.map((s) => el('option', {value: s}, s)));
  const poolSel = el('select', {id: 'filter-pool'}, el('option', {value: ''}, 'all pools'));
  const tagInput = el('input', {id: 'filter-tag', type: 'search', placeholder: 'tag'});
  const textInput = el('input', {id: 'filter-text', type: 'search', placeholder: 'id or title'});
  stateSel.value = filters.state;
  tagInput.value = filters.tag;
  textInput.value = filters.text;
  const tbody = el('tbody');
  const count = el('span', {id: 'job-count'});
  const table =
      el('table', {id: 'jobs'},
         el('thead', {},
            el('tr', {},
               ['id', 'state', 'reason', 'pool', 'attempt', 'progress', 'age', 'title'].map(
                   (c) => el('th', {}, c)))),
         tbody);
  main.replaceChildren(
      el('h1', {}, 'Jobs'), el('div', {className: 'filters'}, stateSel, poolSel, tagInput, textInput, count),
      table);

  function render() {
    if (!index) return;
    const pools = Object.keys(index.pools || {}).sort();
    const wanted = filters.pool;
    poolSel.replaceChildren(
        el('option', {value: ''}, 'all pools'), ...pools.map((p) => el('option', {value: p}, p)));
    poolSel.value = pools.includes(wanted) ? wanted : '';
    const tag = filters.tag.trim();
    const needle = filters.text.trim().toLowerCase();
    const rows = [];
    const jobs = Object.entries(index.jobs || {});
    jobs.sort((a, b) => text(b[1].created).localeCompare(text(a[1].created)) || a[0].localeCompare(b[0]));
    let shown = 0;
    for (const [id, job] of jobs) {
      if (filters.state && job.state !== filters.state) continue;
      if (filters.pool && job.pool !== filters.pool) continue;
      if (tag && !(Array.isArray(job.tags) && job.tags.includes(tag))) continue;
      if (needle && !id.toLowerCase().includes(needle) && !text(job.title).toLowerCase().includes(needle))
        continue;
      shown++;
      if (rows.length >= 2000) continue;
      let progress = typeof job.progress === 'number' ? job.progress + '%' : '';
      if (job.tasks && typeof job.tasks.total === 'number') {
        const t = job.tasks;
        progress = (t.succeeded + t.failed + t.cancelled) + '/' + t.total + ' tasks';
      }
      rows.push(
          el('tr', {dataset: {jobId: id}},
             el('td', {dataset: {col: 'id'}}, el('a', {className: 'job-link', href: jobHref(id)}, id)),
             el('td', {dataset: {col: 'state'}, className: 'state-' + text(job.state)}, text(job.state)),
             el('td', {dataset: {col: 'reason'}}, text(job.reason)),
             el('td', {dataset: {col: 'pool'}}, text(job.pool)),
             el('td', {dataset: {col: 'attempt'}}, text(job.attempt)),
             el('td', {dataset: {col: 'progress'}}, progress),
             el('td', {dataset: {col: 'age'}, title: text(job.created)}, age(job.created)),
             el('td', {dataset: {col: 'title'}}, text(job.title))));
    }
    tbody.replaceChildren(...rows);
    count.textContent = shown + ' of ' + jobs.length + ' jobs' +
        (shown > rows.length ? ', first ' + rows.length + ' shown' : '');
  }

  const refresh = serialized(async () => {
    try {
      index = await getJson('/api/index');
      say('');
    } catch (e) {
      index = {jobs: {}, pools: {}};
      say(e.message, true);
    }
    render();
    markReady();
  });
  const onFilter = () => {
    filters.state = stateSel.value;
    filters.pool = poolSel.value;
    filters.tag = tagInput.value;
    filters.text = textInput.value;
    render();
  };
  for (const input of [stateSel, poolSel]) input.addEventListener('change', onFilter);
  for (const input of [tagInput, textInput]) input.addEventListener('input', onFilter);
  listen('/api/live', {index: refresh, hello: refresh});
  refresh();
}

// ---- one job ----------------------------------------------------------------

// status.json's fields in words, in the order shown; fields not named here
// (added after v1) follow under their own names.
const FIELD_WORDS = {
  id: 'Id',
  title: 'Title',
  state: 'State',
  reason: 'Reason',
  message: 'Message',
  pool: 'Pool',
  tags: 'Tags',
  priority: 'Priority',
  owner: 'Owner',
  owner_uid: 'Owner uid',
  metadata: 'Metadata',
  attempt: 'Attempt',
  max_attempts: 'Attempts allowed',
  exit_code: 'Exit code',
  signal: 'Signal',
  progress: 'Progress (%)',
  progress_message: 'Progress message',
  pid: 'Process id',
  next_attempt_at: 'Next attempt at',
  created: 'Created',
  started: 'Started',
  finished: 'Finished',
  updated: 'Updated',
  interruptions: 'Interruptions',
  after: 'Waits for (after)',
  waiting_on: 'Still waiting on',
  tasks: 'Tasks',
  failed_indexes: 'Failed task indexes',
  halted_by: 'Halted by',
  array: 'Array',
  array_index: 'Index in its array',
  seq: 'Sequence number',
  schema: 'Schema',
};

// How much of a log the page shows: its tail; the whole is a download.
const LOG_TAIL = 256 * 1024;

// Shows the last LOG_TAIL bytes of the log at `url` in `pre` and, with
// `follow`, what is written to it after, keeping only about the last
// LOG_TAIL characters; `note` then says so and links to the whole log.
function followLog(url, pre, note, follow) {
  const controller = new AbortController();
  cleanups.push(() => controller.abort());
  pre.replaceChildren();
  note.replaceChildren();
  note.hidden = true;
  const cut = () => {
    note.replaceChildren(
        'showing the last ' + LOG_TAIL / 1024 + ' KiB; ',
        el('a', {id: 'log-whole', className: 'download', href: url, download: ''}, 'download the whole log'));
    note.hidden = false;
  };
  (async () => {
    let shown = '';
    try {
      const head = await fetch(url, {method: 'HEAD', signal: controller.signal});
      if (!head.ok) {
        pre.textContent = head.status === 404 ? '' : 'HTTP ' + head.status;
        return;
      }
      const from = Math.max(0, (Number(head.headers.get('X-Spoold-File-Size')) || 0) - LOG_TAIL);
      if (from > 0) cut();
      const res =
          await fetch(url + '?offset=' + from + (follow ? '&follow=1' : ''), {signal: controller.signal});
      if (!res.ok) {
        pre.textContent = res.status === 404 ? '' : 'HTTP ' + res.status;
        return;
      }
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let partialLine = from > 0;  // the tail starts inside a line: from the next one
      const add = (chunk) => {
        if (partialLine) {
          const newline = chunk.indexOf('\n');
          if (newline < 0) return;
          chunk = chunk.slice(newline + 1);
          partialLine = false;
        }
        shown += chunk;
        if (shown.length > 2 * LOG_TAIL) {
          shown = shown.slice(shown.indexOf('\n', shown.length - LOG_TAIL) + 1);
          cut();
        }
        pre.textContent = shown;
      };
      for (;;) {
        const {done, value} = await reader.read();
        if (done) break;
        add(decoder.decode(value, {stream: true}));
      }
      add(decoder.decode());
    } catch (e) {
      if (e.name !== 'AbortError') pre.append('\n[' + e.message + ']');
    }
  })();
  return () => controller.abort();
}

function jobView(id) {
  const stateSpan = el('span', {id: 'job-state'});
  const reasonSpan = el('span', {id: 'job-reason'});
  const actions = el('div', {className: 'actions'});
  const fields = el('tbody');
  const attemptsBody = el('tbody');
  const picker = el('select', {id: 'attempt'});
  // One log at a time, stdout or stderr, so that a running job's page holds
  // two long connections (events and the followed log), not three.
  const pres = {
    stdout: el('pre', {id: 'log-stdout', className: 'log'}),
    stderr: el('pre', {id: 'log-stderr', className: 'log', hidden: true})
  };
  let logStream = 'stdout';
  const streamButtons = ['stdout', 'stderr'].map(
      (name) =>
          el('button', {
            id: 'log-pick-' + name,
            className: 'log-pick',
            type: 'button',
            'aria-pressed': String(name === logStream),
            onclick: () => {
              if (logStream === name) return;
              logStream = name;
              for (const b of streamButtons)
                b.setAttribute('aria-pressed', String(b.id === 'log-pick-' + name));
              showLogs(logAttempt, attemptRunning(logAttempt));
            }
          },
             name));
  const logNote = el('p', {id: 'log-note', hidden: true});
  const missing = el('p', {id: 'job-missing', hidden: true});
  const resultsBody = el('tbody');
  const eventsBody = el('tbody');
  const deps = el('div', {id: 'dependencies'});
  const tasksBox = el('div', {id: 'tasks-box'});
  main.replaceChildren(
      el('h1', {}, 'Job ', el('span', {id: 'job-id'}, id), ' ', stateSpan, ' ', reasonSpan), missing, actions,
      el('h2', {}, 'Status'), el('table', {id: 'fields', className: 'fields'}, fields), deps, tasksBox,
      el('h2', {}, 'Attempts'),
      el('table', {id: 'attempts'},
         el('thead', {},
            el('tr', {},
               [
                 'attempt', 'started', 'finished', 'duration', 'exit code', 'signal', 'reason', 'cpu user',
                 'cpu sys', 'max rss', 'pid'
               ].map((c) => el('th', {}, c)))),
         attemptsBody),
      el('h2', {}, 'Logs ', el('label', {}, 'attempt ', picker), ' ', streamButtons), logNote, pres.stdout,
      pres.stderr, el('h2', {}, 'Results'),
      el('table', {id: 'results'},
         el('thead', {}, el('tr', {}, ['file', 'type', 'size', 'sha256', ''].map((c) => el('th', {}, c)))),
         resultsBody),
      el('h2', {}, 'Events'),
      el('table', {id: 'events'},
         el('thead', {},
            el('tr', {}, ['time', 'level', 'event', 'attempt', 'message'].map((c) => el('th', {}, c)))),
         eventsBody));

  let status = null;
  let logAttempt = 0;  // the attempt whose logs are shown
  let logFollowing = false;
  let pickedByHand = false;
  let stopLogs = [];

  function showLogs(attempt, running) {
    for (const stop of stopLogs) stop();
    logAttempt = attempt;
    logFollowing = running;
    for (const [name, pre] of Object.entries(pres)) {
      pre.hidden = name !== logStream;
      pre.replaceChildren();
    }
    stopLogs = [];
    logNote.hidden = true;
    if (!attempt) return;
    const url = apiJob(id) + '/attempts/' + attempt + '/' + logStream;
    stopLogs = [followLog(url, pres[logStream], logNote, running)];
  }
  picker.addEventListener('change', () => {
    pickedByHand = true;
    const n = Number(picker.value);
    showLogs(n, attemptRunning(n));
  });

  function attemptRunning(n) {
    if (!status || TERMINAL.includes(status.state)) return false;
    const entry = (status.attempts || []).find((a) => a.attempt === n);
    return !!entry && !entry.finished;
  }

  function renderStatus() {
    stateSpan.textContent = text(status.state);
    stateSpan.className = 'state-' + text(status.state);
    reasonSpan.textContent = text(status.reason);
    const buttons = [];
    const isTask = id.includes(':');
    if (status.state === 'queued' || status.state === 'running') {
      buttons.push(actionButton('action-cancel', 'Cancel', () => post(apiJob(id) + '/cancel').then(refresh)));
    }
    if (status.state === 'queued' && status.reason === 'held' && !isTask) {
      buttons.push(actionButton('action-start', 'Start', () => post(apiJob(id) + '/start').then(refresh)));
    }
    if (TERMINAL.includes(status.state) && !isTask) {
      buttons.push(actionButton('action-rerun', 'Rerun', async () => {
        const out = await post(apiJob(id) + '/rerun');
        if (out && out.id) navigate(jobHref(out.id));
      }));
    }
    actions.replaceChildren(...buttons.filter(Boolean));

    const keys = [
      ...Object.keys(FIELD_WORDS).filter((k) => k in status),
      ...Object.keys(status).filter((k) => !(k in FIELD_WORDS) && k !== 'attempts')
    ];
    fields.replaceChildren(...keys.map((key) => {
      let value = status[key];
      let cell;
      if (key === 'array' && value)
        cell = el('a', {href: jobHref(value), className: 'job-link-array'}, value);
      else if (key === 'metadata' || key === 'tasks')
        cell = el('code', {}, JSON.stringify(value));
      else if (Array.isArray(value))
        cell = value.map((v) => (typeof v === 'object' ? JSON.stringify(v) : text(v))).join(', ');
      else
        cell = text(value);
      return el('tr', {dataset: {field: key}}, el('th', {}, FIELD_WORDS[key] || key), el('td', {}, cell));
    }));

    const after = Array.isArray(status.after) ? status.after : [];
    deps.replaceChildren();
    if (after.length) {
      const waiting = Array.isArray(status.waiting_on) ? status.waiting_on : [];
      deps.append(
          el('h2', {}, 'Dependencies'),
          el('table', {id: 'after'},
             el('thead', {}, el('tr', {}, ['job', 'condition', ''].map((c) => el('th', {}, c)))),
             el('tbody', {},
                after.map(
                    (a) =>
                        el('tr', {dataset: {parent: text(a.job)}},
                           el('td', {}, el('a', {href: jobHref(text(a.job))}, text(a.job))),
                           el('td', {}, text(a.on)),
                           el('td', {}, waiting.includes(a.job) ? 'waiting' : 'decided'))))));
    }

    const attempts = Array.isArray(status.attempts) ? status.attempts : [];
    attemptsBody.replaceChildren(...attempts.map(
        (a) =>
            el('tr', {dataset: {attempt: a.attempt}}, el('td', {}, text(a.attempt)),
               el('td', {}, text(a.started)), el('td', {}, text(a.finished)),
               el('td', {}, typeof a.duration_s === 'number' ? a.duration_s.toFixed(2) + ' s' : ''),
               el('td', {}, text(a.exit_code)), el('td', {}, text(a.signal)), el('td', {}, text(a.reason)),
               el('td', {}, typeof a.cpu_user_s === 'number' ? a.cpu_user_s.toFixed(2) + ' s' : ''),
               el('td', {}, typeof a.cpu_sys_s === 'number' ? a.cpu_sys_s.toFixed(2) + ' s' : ''),
               el('td', {}, typeof a.max_rss_kb === 'number' ? a.max_rss_kb + ' kB' : ''),
               el('td', {}, text(a.pid)))));

    const numbers = attempts.map((a) => a.attempt).filter((n) => typeof n === 'number');
    const latest = numbers.length ? Math.max(...numbers) : 0;
    const keep = pickedByHand && numbers.includes(logAttempt) ? logAttempt : latest;
    picker.replaceChildren(...numbers.map((n) => el('option', {value: n}, String(n))));
    if (keep) picker.value = String(keep);
    const running = attemptRunning(keep);
    // A new attempt, or the shown one started or stopped being followed.
    if (keep !== logAttempt || (running && !logFollowing)) showLogs(keep, running);
    if (!running) logFollowing = false;
  }

  let shownResults = null;  // results.json as last drawn: redrawn only when it changed
  function renderResults(item) {
    // A refresh that finds the same list keeps its rows (and the links being clicked).
    const key = JSON.stringify(item);
    if (key === shownResults) return;
    shownResults = key;
    const assets = item && item.assets && typeof item.assets === 'object' ? item.assets : {};
    resultsBody.replaceChildren(...Object.entries(assets).map(([key, asset]) => {
      const url = asset && typeof asset === 'object' ? resultUrl(id, asset.href) : null;
      return el(
          'tr', {dataset: {path: key}}, el('td', {dataset: {col: 'path'}}, key),
          el('td', {dataset: {col: 'type'}}, text(asset.type)),
          el('td', {dataset: {col: 'size'}, title: size(asset['file:size'])}, text(asset['file:size'])),
          el('td', {dataset: {col: 'sha256'}}, sha256Hex(asset['file:checksum'])),
          el('td', {}, url ? el('a', {className: 'download', href: url, download: ''}, 'download') : ''));
    }));
  }

  function renderEvents(events) {
    eventsBody.replaceChildren(...events.map(
        (e) =>
            el('tr', {dataset: {seq: text(e.seq), event: text(e.event)}}, el('td', {}, text(e.time)),
               el('td', {className: 'level-' + text(e.level)}, text(e.level)), el('td', {}, text(e.event)),
               el('td', {}, e.attempt ? text(e.attempt) : ''), el('td', {}, text(e.message)))));
  }

  async function renderTasks() {
    if (!status.tasks) {
      tasksBox.replaceChildren();
      return;
    }
    const list = await getJson(apiJob(id) + '/tasks?limit=1000');
    tasksBox.replaceChildren(
        el('h2', {}, 'Tasks'),
        el('table', {id: 'tasks'},
           el('thead', {},
              el('tr', {}, ['task', 'state', 'reason', 'attempt', 'progress'].map((c) => el('th', {}, c)))),
           el('tbody', {},
              list.tasks.map(
                  (t) =>
                      el('tr', {dataset: {jobId: t.id}},
                         el('td', {}, el('a', {className: 'job-link', href: jobHref(t.id)}, t.id)),
                         el('td', {dataset: {col: 'state'}}, text(t.state)), el('td', {}, text(t.reason)),
                         el('td', {}, text(t.attempt)),
                         el('td', {}, typeof t.progress === 'number' ? t.progress + '%' : ''))))));
  }

  // The live source: the job's folder while it is there; the index while it
  // is not (a rerun's new job before spoold takes it in, a job removed), so
  // that each index change looks again.
  let live = null;
  let closed = false;
  cleanups.push(() => {
    closed = true;
  });
  function liveOn(kind) {
    if (closed || (live && live.kind === kind)) return;
    if (live) live.close();
    const onClosed = () => {
      live = null;
      setTimeout(refresh, 2000);
    };
    live = kind === 'job' ? {
      kind,
      close: listen('/api/live?job=' + encodeURIComponent(id), {job: refresh, hello: refresh}, onClosed)
    } :
                            {kind, close: listen('/api/live', {index: refresh, hello: refresh}, onClosed)};
  }

  const refresh = serialized(async () => {
    if (closed) return;
    try {
      status = await getJson(apiJob(id));
    } catch (e) {
      if (e.status === 404) {
        stateSpan.textContent = '';
        missing.textContent = 'job ' + id + ' is not there yet: this page shows it once it is';
        missing.hidden = false;
        liveOn('index');
      } else {
        say(e.message, true);
        if (!live) liveOn('index');
      }
      markReady();
      return;
    }
    missing.hidden = true;
    liveOn('job');
    renderStatus();
    const [events, results] = await Promise.all([
      getJson(apiJob(id) + '/events').catch(() => []), getJson(apiJob(id) + '/results').catch(() => null)
    ]);
    renderEvents(events);
    renderResults(results);
    await renderTasks().catch(() => {});
    markReady();
  });
  cleanups.push(() => {
    for (const stop of stopLogs) stop();
  });
  refresh();
}

// ---- pools ------------------------------------------------------------------

function poolsView() {
  const tbody = el('tbody');
  const daemon = el('p', {id: 'daemon'});
  main.replaceChildren(
      el('h1', {}, 'Pools'), daemon,
      el('table', {id: 'pools'},
         el('thead', {},
            el('tr', {},
               ['pool', 'executor', 'workers', 'running', 'queued', 'queue limit', 'paused',
                ''].map((c) => el('th', {}, c)))),
         tbody));
  const refresh = serialized(async () => {
    let data;
    try {
      data = await getJson('/api/pools');
      say('');
    } catch (e) {
      data = {pools: {}};
      say(e.message, true);
    }
    const d = data.daemon || {};
    daemon.textContent =
        d.pid ? 'spoold ' + text(d.version) + ', pid ' + text(d.pid) + ', ' + text(d.state) : '';
    tbody.replaceChildren(...Object.keys(data.pools || {}).sort().map((name) => {
      const p = data.pools[name];
      const url = '/api/pools/' + encodeURIComponent(name);
      let button = null;
      if (!readOnly) {
        button = p.paused ? el('button', {
          className: 'action action-resume',
          type: 'button',
          onclick: () => post(url + '/resume').then(refresh)
        },
                               'Resume') :
                            el('button', {
                              className: 'action action-pause',
                              type: 'button',
                              onclick: () => post(url + '/pause').then(refresh)
                            },
                               'Pause');
      }
      return el(
          'tr', {dataset: {pool: name}}, el('td', {dataset: {col: 'name'}}, name),
          el('td', {dataset: {col: 'executor'}}, text(p.executor)),
          el('td', {dataset: {col: 'workers'}}, text(p.workers)),
          el('td', {dataset: {col: 'running'}}, text(p.running)),
          el('td', {dataset: {col: 'queued'}}, text(p.queued)),
          el('td', {dataset: {col: 'queue_limit'}}, text(p.queue_limit)),
          el('td', {dataset: {col: 'paused'}}, p.paused ? 'yes' : 'no'), el('td', {}, button));
    }));
    markReady();
  });
  listen('/api/live', {index: refresh, hello: refresh});
  refresh();
}

// ---- routing ----------------------------------------------------------------

function route() {
  for (const fn of cleanups) fn();
  cleanups = [];
  say('');
  delete document.body.dataset.ready;
  const path = location.pathname;
  for (const a of document.querySelectorAll('nav a')) a.classList.remove('current');
  if (path.startsWith('/jobs/') && path.length > 6) {
    document.getElementById('nav-jobs').classList.add('current');
    let id = null;
    try {
      id = decodeURIComponent(path.slice(6));
    } catch (e) {
      main.replaceChildren(el('h1', {}, 'Job'), el('p', {id: 'bad-id'}, 'bad job id'));
      say('bad job id: ' + path.slice(6), true);
      markReady();
    }
    if (id !== null) jobView(id);
  } else if (path === '/pools') {
    document.getElementById('nav-pools').classList.add('current');
    poolsView();
  } else {
    document.getElementById('nav-jobs').classList.add('current');
    jobsView();
  }
}

function navigate(href) {
  history.pushState(null, '', href);
  route();
}

document.addEventListener('click', (event) => {
  const a = event.target.closest('a');
  if (!a || a.classList.contains('download') || event.button !== 0 || event.ctrlKey || event.metaKey ||
      event.shiftKey || a.origin !== location.origin || a.pathname.startsWith('/api/'))
    return;
  event.preventDefault();
  navigate(a.pathname + a.search);
});
window.addEventListener('popstate', route);

document.getElementById('mode').textContent = readOnly ? modeNote || 'read-only' : '';
getJson('/api/session')
    .then((s) => {
      document.getElementById('root').textContent = s.root;
    })
    .catch(() => {});
route();
})();
