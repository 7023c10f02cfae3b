// The job view's edges: a malformed id in the address says "bad job id"; a
// long log shows its tail with a link to the whole; a results.json href that
// leaves results/ gets no download link; and a job that is not there yet (a
// rerun's new id before spoold takes the file in) says so and shows the job
// once it appears, without a reload.
// Arguments: url, root, big (an ended job with a stdout of megabytes), hostile
// (an ended job whose results.json has hrefs outside results/ and one good
// one, results/good.txt), pending (an id not dropped yet), toml (its job file).
import fs from 'node:fs';
import path from 'node:path';
import { check, dropJob, Failure, log, open, scenario, textOf, visible, waitFor } from './lib.mjs';

const TAIL = 256 * 1024;

scenario('job_edges', async ({ args, page }) => {
  const { root, big, hostile, pending } = args;

  await open(page, '/jobs/%E0%A4');
  check(/bad job id/.test((await textOf(page, '#bad-id')) || ''), '/jobs/%E0%A4 does not say "bad job id"');

  await open(page, `/jobs/${big}`);
  const file = fs.readFileSync(path.join(root, 'jobs', big, 'attempts', '1', 'stdout.log'), 'utf8');
  check(file.length > 4 * TAIL, `the log of ${big} is only ${file.length} bytes (test setup)`);
  const shown = await waitFor(async () => {
    const t = (await textOf(page, '#log-stdout')) || '';
    return t.length > 0 && file.endsWith(t) && t;
  }, { timeout: 10000, what: `#log-stdout showing the end of ${big}'s log` });
  check(shown.length <= TAIL, `#log-stdout holds ${shown.length} characters, more than the last ${TAIL}`);
  check(/^line \d+\n/.test(shown), `the tail does not start at a line: ${JSON.stringify(shown.slice(0, 40))}`);
  check(await visible(page, '#log-note'), 'no #log-note saying only the tail shows');
  const whole = await page.$eval('#log-whole', (a) => a.getAttribute('href')).catch(() => null);
  check(whole === `/api/jobs/${big}/attempts/1/stdout`, `#log-whole links to ${JSON.stringify(whole)}`);
  log(`tail: ${shown.length} of ${file.length} characters; note: ${JSON.stringify(await textOf(page, '#log-note'))}`);

  await open(page, `/jobs/${hostile}`);
  const links = await page.$$eval('#results tr[data-path]', (rows) => rows.map(
    (r) => [r.getAttribute('data-path'), r.querySelector('a.download')?.getAttribute('href') ?? null]));
  const byPath = Object.fromEntries(links);
  check(byPath.good === `/api/jobs/${hostile}/files/results/good.txt`,
        `the good result links to ${JSON.stringify(byPath.good)}`);
  for (const [key, href] of links) {
    if (key !== 'good') check(href === null, `result ${JSON.stringify(key)} has a download link ${href}`);
  }
  check(links.length >= 4, `#results has ${links.length} rows: ${JSON.stringify(links)}`);

  await open(page, `/jobs/${pending}`);
  const loads = page.__loads;
  await page.evaluate(() => { window.__sameDocument = 'yes'; });
  check(await visible(page, '#job-missing'), `/jobs/${pending} shows no #job-missing before the job exists`);
  check(/not there yet/.test((await textOf(page, '#job-missing')) || ''), '#job-missing does not say "not there yet"');
  dropJob(root, pending, args.toml);
  await page.waitForFunction(() => !!document.querySelector('#job-state')?.textContent.trim(), null,
                             { timeout: 15000 })
    .catch(() => { throw new Failure(`/jobs/${pending} never showed the job after it was dropped`); });
  check(!(await visible(page, '#job-missing')), '#job-missing still shows once the job is there');
  check(page.__loads === loads && (await page.evaluate(() => window.__sameDocument)) === 'yes',
        'the page reloaded to show the job');
  log(`${pending} showed as ${JSON.stringify((await textOf(page, '#job-state')).trim())} once dropped`);
});
