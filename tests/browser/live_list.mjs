// The job list follows the spool without a reload: a job file dropped while `/`
// is open shows as a row within a second or so of index.json listing it, and the
// row's state changes when the job ends.
// Arguments: url, root, id, toml (the job file dropped; it must end succeeded).
import path from 'node:path';
import { check, dropJob, Failure, log, open, readJson, scenario, statusOnDisk, textOf, timing, waitFor } from './lib.mjs';

const STATES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];
// How long after index.json lists the job (or its end) the page may take.
const MAX_AFTER_INDEX_MS = 1500;
// And after the drop itself: index.json lags the job folders by at most a
// second (SPEC section 7), plus the page's own time.
const MAX_AFTER_DROP_MS = 2500;

scenario('live_list', async ({ args, page }) => {
  const { root, id } = args;
  const row = `#jobs tr[data-job-id="${id}"]`;
  await open(page, '/');
  check(await page.$('table#jobs'), 'no <table id="jobs"> on /');
  check(!(await page.$(row)), `a row for ${id} before it was dropped`);
  await page.evaluate(() => { window.__sameDocument = 'yes'; });

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
  check(shown - seen.listed <= MAX_AFTER_INDEX_MS,
        `the row came ${shown - seen.listed} ms after index.json listed the job (at most ${MAX_AFTER_INDEX_MS})`);
  check(shown - dropped <= MAX_AFTER_DROP_MS,
        `the row came ${shown - dropped} ms after the drop (at most ${MAX_AFTER_DROP_MS})`);
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
  check(ended - seen.ended <= MAX_AFTER_INDEX_MS,
        `the row said succeeded ${ended - seen.ended} ms after index.json (at most ${MAX_AFTER_INDEX_MS})`);
  check(page.__loads === 1 && (await page.evaluate(() => window.__sameDocument)) === 'yes',
        'the page reloaded to show the job ending');
  check((await page.$$(row)).length === 1, `more than one row for ${id}`);
  watching = false;
  await watcher;
  log(`row for ${id}: ${shown - dropped} ms after the drop, ${shown - seen.listed} ms after index.json`);
});
