// Cancel from the job's view: #action-cancel on a running job cancels it; the
// page then says cancelled, status.json says cancelled (by the user), and the
// button no longer shows.
// Arguments: url, root, id (a running job that would run for minutes).
import { check, Failure, log, open, scenario, statusOnDisk, textOf, timing, visible, waitFor } from './lib.mjs';

scenario('cancel', async ({ args, page }) => {
  const { root, id } = args;
  await open(page, `/jobs/${id}`);
  const state = (await textOf(page, '#job-state'))?.trim();
  check(state === 'running', `#job-state is ${JSON.stringify(state)}, the job is running`);
  check(await visible(page, '#action-cancel'), 'no visible #action-cancel on a running job');
  check(await page.$('#action-cancel.action'), '#action-cancel lacks the class "action"');
  check(!(await visible(page, '#action-start')), '#action-start shows on a running job');

  const clicked = Date.now();
  await page.click('#action-cancel');
  await page.waitForFunction(() => document.querySelector('#job-state')?.textContent.trim() === 'cancelled',
                             null, { timeout: 15000 })
    .catch(async () => {
      throw new Failure(`#job-state never said cancelled after the click (it says ` +
                        `${JSON.stringify(await textOf(page, '#job-state'))}; status.json says ` +
                        `${JSON.stringify(statusOnDisk(root, id)?.state)})`);
    });
  timing('click_to_cancelled_ms', Date.now() - clicked);
  const st = await waitFor(() => statusOnDisk(root, id)?.state === 'cancelled' && statusOnDisk(root, id),
                           { timeout: 5000, what: `status.json of ${id} saying cancelled` });
  check(st.reason === 'cancelled_by_user', `status.json reason ${JSON.stringify(st.reason)}, expected cancelled_by_user`);
  await waitFor(async () => !(await visible(page, '#action-cancel')),
                { timeout: 5000, what: '#action-cancel to go once the job is cancelled' });
  const reason = (await textOf(page, '#job-reason')) ?? '';
  log(`cancelled: #job-reason ${JSON.stringify(reason.trim())}`);
});
