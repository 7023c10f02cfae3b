// The job list follows the spool without a reload and without polling: a job
// file dropped while `/` is open shows as a row once index.json lists it
// (the TIMING lines say how soon: about 0.1 s here), and the row's state
// changes when the job ends.
// Arguments: url, root, id, toml (the job file dropped; it must end succeeded).
import path from 'node:path';
import { check, dropJob, Failure, log, open, readJson, scenario, statusOnDisk, textOf, timing, waitFor } from './lib.mjs';

const STATES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];
// How long the page may look at an idle spool: it must ask for nothing then
// (no polling: the server pushes). The latencies are printed as TIMING lines,
// not asserted (the machines' speed varies several-fold); a page that does
// not follow the spool never shows the row at all without a reload.
const QUIET_MS = 2500;

scenario('live_list', async ({ args, page }) => {
  const { root, id } = args;
  const row = `#jobs tr[data-job-id="${id}"]`;
  await open(page, '/');
  check(await page.$('table#jobs'), 'no <table id="jobs"> on /');
  check(!(await page.$(row)), `a row for ${id} before it was dropped`);
  await page.evaluate(() => { window.__sameDocument = 'yes'; });

  // An idle spool: the page asks the server for nothing (it is told of
  // changes; it does not poll).
  const asked = [];
  const onRequest = (request) => { if (new URL(request.url()).pathname.startsWith('/api/')) asked.push(request.url()); };
  page.on('request', onRequest);
  await new Promise((r) => setTimeout(r, QUIET_MS));
  page.off('request', onRequest);
  check(asked.length === 0, `the page polled an idle spool: ${asked.join(', ')}`);

  // Watch index.json from the drop on: when does it first list the job, and
  // when does it first say it ended?
  const seen = { listed: null, ended: null };
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      try {
        const entry = readJson(path.join(root, 'index.json')).jobs[id];
        if (entry && seen.listed === null) seen.listed = Date.now();
        if (entry && entry.state === 'succeeded' && seen.ended === null) seen.ended = Date.now();
      } catch { /* being replaced */ }
      await new Promise((r) => setTimeout(r, 5));
    }
  })();

  const dropped = Date.now();
  dropJob(root, id, args.toml);
  try {
    await page.waitForSelector(row, { state: 'attached', timeout: 10000 });
  } catch {
    throw new Failure(`no row ${row} within 10 s of the drop (index.json listed it ` +
                    `${seen.listed === null ? 'never' : `${seen.listed - dropped} ms after the drop`})`);
  }
  const shown = Date.now();
  await waitFor(() => seen.listed !== null, { timeout: 5000, what: `index.json listing ${id}` });
  timing('drop_to_index_ms', seen.listed - dropped);
  timing('drop_to_row_ms', shown - dropped);
  timing('index_to_row_ms', shown - seen.listed);
  check(page.__loads === 1 && (await page.evaluate(() => window.__sameDocument)) === 'yes',
        'the page reloaded to show the new job');

  const state = (await textOf(page, `${row} td[data-col="state"]`))?.trim();
  check(STATES.includes(state), `state cell of the new row: ${JSON.stringify(state)}`);
  const title = (await textOf(page, `${row} td[data-col="title"]`)) || '';
  check(title.includes(args.title), `title cell ${JSON.stringify(title)} lacks ${JSON.stringify(args.title)}`);
  check(await page.$(`${row} a.job-link[href="/jobs/${id}"]`), `no a.job-link to /jobs/${id} in the row`);
  for (const col of ['state', 'reason', 'pool', 'attempt', 'progress', 'age', 'title']) {
    check(await page.$(`${row} td[data-col="${col}"]`), `no td[data-col="${col}"] in the row`);
  }

  // The same row follows the job to its end.
  await waitFor(() => statusOnDisk(root, id)?.state === 'succeeded',
                { timeout: 15000, what: `status.json of ${id} saying succeeded` });
  await waitFor(() => seen.ended !== null, { timeout: 5000, what: `index.json saying ${id} succeeded` });
  await page.waitForFunction((sel) => document.querySelector(sel)?.textContent.trim() === 'succeeded',
                             `${row} td[data-col="state"]`, { timeout: 10000 })
    .catch(() => { throw new Failure(`the row's state never became succeeded`); });
  const ended = Date.now();
  timing('index_end_to_row_ms', ended - seen.ended);
  check(page.__loads === 1 && (await page.evaluate(() => window.__sameDocument)) === 'yes',
        'the page reloaded to show the job ending');
  check((await page.$$(row)).length === 1, `more than one row for ${id}`);
  watching = false;
  await watcher;
  log(`row for ${id}: ${shown - dropped} ms after the drop, ${shown - seen.listed} ms after index.json`);
});
