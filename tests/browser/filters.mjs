// The job list's filters hide what does not match: text, state, pool and tag.
// Arguments: url, root, jobs ({id: {state, pool}} of every job in the spool),
// cases ([{control, value, expect: [ids]}], control one of filter-text,
// filter-tag (typed) or filter-state, filter-pool (selected)).
// With SPOOLD_SCREENSHOTS set, saves jobs.png (the list, unfiltered) first.
import { check, Failure, log, open, scenario, shot, waitFor } from './lib.mjs';

async function shownIds(page) {
  return page.$$eval('#jobs tr[data-job-id]', (rows) => rows
    .filter((r) => r.getClientRects().length > 0 && getComputedStyle(r).visibility !== 'hidden')
    .map((r) => r.dataset.jobId).sort());
}

async function setControl(page, control, value) {
  const sel = `#${control}`;
  const el = await page.$(sel);
  check(el, `no ${sel} on /`);
  if (control === 'filter-state' || control === 'filter-pool') {
    const options = await page.$$eval(`${sel} option`, (os) => os.map((o) => ({ value: o.value, label: o.textContent.trim() })));
    const option = value === null
      ? options.find((o) => o.value === '') || options[0]
      : options.find((o) => o.value === value) || options.find((o) => o.label === value);
    check(option, `${sel} has no option ${JSON.stringify(value)}: ${JSON.stringify(options)}`);
    await page.selectOption(sel, option.value);
  } else {
    await page.fill(sel, value === null ? '' : value);
  }
}

scenario('filters', async ({ args, page }) => {
  const all = Object.keys(args.jobs).sort();
  await open(page, '/');
  await waitFor(async () => JSON.stringify(await shownIds(page)) === JSON.stringify(all),
                { timeout: 5000, what: `rows of every job (${all.join(', ')})` })
    .catch(async (err) => { throw new Failure(`${err.message}; shown: ${(await shownIds(page)).join(', ')}`); });
  // Each row's state and pool cells agree with status.json.
  for (const [id, job] of Object.entries(args.jobs)) {
    const row = `#jobs tr[data-job-id="${id}"]`;
    const state = (await page.textContent(`${row} td[data-col="state"]`)).trim();
    check(state === job.state, `the state cell of ${id} says ${JSON.stringify(state)}, status.json ${job.state}`);
    const pool = (await page.textContent(`${row} td[data-col="pool"]`)).trim();
    check(pool === job.pool, `the pool cell of ${id} says ${JSON.stringify(pool)}, status.json ${job.pool}`);
  }
  await shot(page, 'jobs.png');

  for (const { control, value, expect } of args.cases) {
    await setControl(page, control, value);
    const want = [...expect].sort();
    await waitFor(async () => JSON.stringify(await shownIds(page)) === JSON.stringify(want),
                  { timeout: 3000, what: `#${control} = ${JSON.stringify(value)} showing only ${want.join(', ')}` })
      .catch(async (err) => { throw new Failure(`${err.message}; shown: ${(await shownIds(page)).join(', ')}`); });
    log(`#${control} = ${JSON.stringify(value)}: ${want.join(', ')}`);
    await setControl(page, control, null);
    await waitFor(async () => JSON.stringify(await shownIds(page)) === JSON.stringify(all),
                  { timeout: 3000, what: `every row again once #${control} is cleared` })
      .catch(async (err) => { throw new Failure(`${err.message}; shown: ${(await shownIds(page)).join(', ')}`); });
  }
});
