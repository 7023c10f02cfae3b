// One job in the web view (SPEC.md section 12): its fields, attempts, logs,
// results, events and actions.
import {TERMINAL, actionButton, apiJob, cleanups, el, getJson, jobHref, listen, main, markReady, navigate, post, resultUrl, say, serialized, sha256Hex, size, text} from '/common.js';

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

export function jobView(id) {
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
