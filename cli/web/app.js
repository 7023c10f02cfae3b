// The web view of spoolctl serve: one page that routes on location.pathname
// (/, /jobs/<id>, /pools) with history.pushState, reads the JSON API of
// SPEC.md section 12 and follows its Server-Sent Events. No framework, no
// build step: ES modules (common.js, jobs.js, job.js, pools.js) served by
// spoolctl from its own binary.
import {cleanups, el, getJson, main, markReady, modeNote, navigate, readOnly, say, setRouter} from '/common.js';
import {jobView} from '/job.js';
import {jobsView} from '/jobs.js';
import {poolsView} from '/pools.js';

// ---- routing ----------------------------------------------------------------

function route() {
  for (const fn of cleanups) fn();
  cleanups.length = 0;
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


document.addEventListener('click', (event) => {
  const a = event.target.closest('a');
  if (!a || a.classList.contains('download') || event.button !== 0 || event.ctrlKey || event.metaKey ||
      event.shiftKey || a.origin !== location.origin || a.pathname.startsWith('/api/'))
    return;
  event.preventDefault();
  navigate(a.pathname + a.search);
});
window.addEventListener('popstate', route);
setRouter(route);

document.getElementById('mode').textContent = readOnly ? modeNote || 'read-only' : '';
getJson('/api/session')
    .then((s) => {
      document.getElementById('root').textContent = s.root;
    })
    .catch(() => {});
route();
