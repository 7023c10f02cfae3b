// A --read-only server offers no action: no element of class "action" on the
// job list, on jobs in any state, or on /pools, and each page says "read-only".
// The same pages from the normal server do show actions, so the check is not
// passing only because the selectors match nothing.
// Arguments: url (the normal server), ro_url (the --read-only one, same root),
// jobs (ids: one running, one held, one ended), pool.
import { check, log, open, scenario, bodyText } from './lib.mjs';

async function actions(page) {
  return page.evaluate(() => [...document.querySelectorAll('.action')].map(
    (el) => `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}.${[...el.classList].join('.')}`));
}

scenario('read_only', async ({ args, page }) => {
  const { jobs, pool } = args;
  const routes = ['/', '/pools', ...jobs.map((id) => `/jobs/${id}`)];

  // The normal server: cancel on the running job, start on the held one,
  // rerun on the ended one, pause on the pool.
  const expectations = {
    [`/jobs/${jobs[0]}`]: '#action-cancel', [`/jobs/${jobs[1]}`]: '#action-start',
    [`/jobs/${jobs[2]}`]: '#action-rerun', '/pools': `#pools tr[data-pool="${pool}"] .action-pause`,
  };
  for (const [route, selector] of Object.entries(expectations)) {
    await open(page, route);
    check(await page.$(`${selector}.action`), `the normal server's ${route} has no ${selector}.action`);
    check(!/read-only/i.test(await bodyText(page)), `the normal server's ${route} says read-only`);
  }

  // The read-only server.
  page.__base = args.ro_url;
  for (const route of routes) {
    await open(page, route);
    const found = await actions(page);
    check(found.length === 0, `read-only ${route} has action elements: ${found.join(', ')}`);
    check(/read-only/i.test(await bodyText(page)), `read-only ${route} does not say "read-only"`);
    const buttons = await page.$$eval('button, input[type=submit], form', (els) => els.map((e) => e.outerHTML.slice(0, 120)));
    log(`${route}: no action; other buttons/forms: ${buttons.length ? buttons.join(' | ') : 'none'}`);
  }
  // And it still shows the spool.
  await open(page, '/');
  for (const id of jobs) check(await page.$(`#jobs tr[data-job-id="${id}"]`), `read-only / lacks the row of ${id}`);
  await open(page, '/pools');
  check(await page.$(`#pools tr[data-pool="${pool}"]`), `read-only /pools lacks the row of pool ${pool}`);
});
