// The pools of the web view (SPEC.md section 12), with pause and resume.
import {el, getJson, listen, main, markReady, post, readOnly, say, serialized, text} from '/common.js';

// ---- pools ------------------------------------------------------------------

export function poolsView() {
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
