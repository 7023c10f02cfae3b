// The job list of the web view (SPEC.md section 12): filters, live rows.
import {STATES, age, el, filters, getJson, jobHref, listen, main, markReady, say, serialized, text} from '/common.js';

// ---- the job list -----------------------------------------------------------

export function jobsView() {
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
