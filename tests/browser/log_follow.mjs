// A running job's view follows its logs: lines the job prints after the page
// opened appear in #log-stdout without a reload, in order and once each; the
// page follows one log at a time (#log-pick-stderr switches to stderr, which
// then follows as well); and when the job ends the page shows exactly what
// the files hold.
// Arguments: url, root, id (a running job that prints "line N" on stdout every
// 0.2 s, and "err N" on stderr every 5th line, until `gate` exists), gate.
import fs from 'node:fs';
import path from 'node:path';
import { check, Failure, log, open, scenario, statusOnDisk, textOf, timing, visible, waitFor } from './lib.mjs';

function lastLine(text) {
  const numbers = [...text.matchAll(/^line (\d+)$/gm)].map((m) => Number(m[1]));
  return numbers.length ? numbers[numbers.length - 1] : 0;
}

// Page text and file text compared without caring about a final newline.
function norm(text) {
  return text.replace(/\r\n/g, '\n').replace(/\n+$/, '');
}

scenario('log_follow', async ({ args, page }) => {
  const { root, id, gate } = args;
  const attemptDir = path.join(root, 'jobs', id, 'attempts', '1');
  const onDisk = (stream) => fs.readFileSync(path.join(attemptDir, `${stream}.log`), 'utf8');

  // The log requests open now: a running job's page follows one log at a time.
  const openLogs = new Set();
  page.on('request', (req) => { if (/\/attempts\/\d+\/std(out|err)/.test(req.url())) openLogs.add(req); });
  page.on('requestfinished', (req) => openLogs.delete(req));
  page.on('requestfailed', (req) => openLogs.delete(req));
  const logsOpen = () => [...openLogs].map((r) => r.url().replace(/^.*\/attempts\//, ''));

  await open(page, `/jobs/${id}`);
  const opened = Date.now();
  const atOpen = lastLine(onDisk('stdout'));
  await page.evaluate(() => { window.__sameDocument = 'yes'; });
  const state = (await textOf(page, '#job-state'))?.trim();
  check(state === 'running', `#job-state is ${JSON.stringify(state)}, the job is running`);
  check(await page.$('pre#log-stdout'), 'no <pre id="log-stdout">');
  check(await page.$('pre#log-stderr'), 'no <pre id="log-stderr">');
  check(!(await visible(page, '#log-stderr')), '#log-stderr shows before it is picked');

  // Five lines (a second) after the page opened.
  const want = atOpen + 5;
  const stdoutText = async () => (await textOf(page, '#log-stdout')) || '';
  await waitFor(async () => lastLine(await stdoutText()) >= want,
                { timeout: 10000, what: `#log-stdout showing "line ${want}" (the file had ${atOpen} lines when the page opened)` })
    .catch(async (err) => { throw new Failure(`${err.message}; #log-stdout ends: ${JSON.stringify((await stdoutText()).slice(-200))}`); });
  timing('follow_5_lines_ms', Date.now() - opened);
  const partial = norm(await stdoutText());
  check(norm(onDisk('stdout')).startsWith(partial),
        `#log-stdout is not a prefix of stdout.log while following: ${JSON.stringify(partial.slice(-300))}`);
  check(logsOpen().length === 1 && /stdout\?offset=0&follow=1$/.test(logsOpen()[0]),
        `the page has these log requests open: ${JSON.stringify(logsOpen())}, expected one following stdout`);

  // stderr, picked: it shows and follows; stdout is no longer fetched.
  await page.click('#log-pick-stderr');
  check(await visible(page, '#log-stderr') && !(await visible(page, '#log-stdout')),
        'after #log-pick-stderr, #log-stderr is not the one shown');
  const errs = async () => [...norm((await textOf(page, '#log-stderr')) || '').matchAll(/^err (\d+)$/gm)].length;
  await waitFor(async () => (await errs()) >= 1, { timeout: 5000, what: '#log-stderr showing an "err N" line' });
  const errsThen = await errs();
  await waitFor(async () => (await errs()) > errsThen, { timeout: 5000, what: '#log-stderr growing while picked' });
  await waitFor(() => logsOpen().length === 1 && /stderr\?offset=0&follow=1$/.test(logsOpen()[0]),
                { timeout: 3000, what: `one log request, following stderr (open: ${JSON.stringify(logsOpen())})` });

  // Let the job end: the view says so and shows both files exactly.
  fs.writeFileSync(gate, '');
  await waitFor(() => ['succeeded', 'failed'].includes(statusOnDisk(root, id)?.state),
                { timeout: 15000, what: `status.json of ${id} saying it ended` });
  await page.waitForFunction(() => document.querySelector('#job-state')?.textContent.trim() === 'succeeded',
                             null, { timeout: 10000 })
    .catch(async () => { throw new Failure(`#job-state never said succeeded (it says ${JSON.stringify(await textOf(page, '#job-state'))})`); });
  for (const stream of ['stderr', 'stdout']) {
    await page.click(`#log-pick-${stream}`);
    const file = norm(onDisk(stream));
    await waitFor(async () => norm((await textOf(page, `#log-${stream}`)) || '') === file,
                  { timeout: 5000, what: `#log-${stream} equal to ${stream}.log (${file.split('\n').length} lines)` })
      .catch(async (err) => {
        const shown = norm((await textOf(page, `#log-${stream}`)) || '');
        throw new Failure(`${err.message}; the page has ${shown.split('\n').length} lines, ending ${JSON.stringify(shown.slice(-200))}`);
      });
  }
  check(page.__loads === 1 && (await page.evaluate(() => window.__sameDocument)) === 'yes',
        'the page reloaded while following the log');
  log(`followed from line ${atOpen} to line ${lastLine(onDisk('stdout'))}`);
});
