// A result downloads intact: clicking a.download in #results saves the file's
// exact bytes, whose sha256 is results.json's checksum and the page's sha256 cell.
// Arguments: url, root, id (a succeeded job), paths (result paths to download).
// With SPOOLD_SCREENSHOTS set, saves job.png (this job, with logs and results).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { check, Failure, log, open, readJson, scenario, sha256, shot, textOf, timing } from './lib.mjs';

scenario('download', async ({ args, page }) => {
  const { root, id, paths } = args;
  const jobDir = path.join(root, 'jobs', id);
  const assets = readJson(path.join(jobDir, 'results.json')).assets;
  await open(page, `/jobs/${id}`);
  const state = (await textOf(page, '#job-state'))?.trim();
  check(state === 'succeeded', `#job-state is ${JSON.stringify(state)}, the job succeeded`);
  check(await page.$('table#results'), 'no <table id="results">');
  if (process.env.SPOOLD_SCREENSHOTS) {
    // The status table fills the first screen: start the picture at the
    // attempts, so that it shows the logs and the results.
    await page.waitForFunction(() => (document.querySelector('#log-stdout')?.textContent || '').includes('done'),
                               null, { timeout: 5000 }).catch(() => {});
    await page.evaluate(() => {
      const heading = [...document.querySelectorAll('h2')].find((h) => /^Attempts/.test(h.textContent.trim()));
      (heading || document.querySelector('#log-stdout')).scrollIntoView({ block: 'start' });
    });
    await shot(page, 'job.png');
    await page.evaluate(() => window.scrollTo(0, 0));
  }

  const saveDir = fs.mkdtempSync(path.join(os.tmpdir(), 'spoold-download-'));
  try {
    for (const p of paths) {
      const asset = assets[p];
      check(asset, `results.json has no asset ${p}`);
      const expected = asset['file:checksum'].replace(/^1220/, '');
      const onDisk = sha256(fs.readFileSync(path.join(jobDir, 'results', p)));
      check(onDisk === expected, `results/${p} on disk does not match results.json (test setup)`);

      // The row, found by comparing data-path (no CSS escaping of the path).
      const rows = await page.$$('#results tr[data-path]');
      let row = null;
      for (const r of rows) if ((await r.getAttribute('data-path')) === p) row = r;
      check(row, `no #results row with data-path ${JSON.stringify(p)}`);
      const cell = ((await (await row.$('td[data-col="sha256"]'))?.textContent()) || '').trim();
      check(cell === expected, `the page's sha256 of ${p} is ${JSON.stringify(cell)}, results.json says ${expected}`);
      check(await row.$('td[data-col="size"]'), `no size cell for ${p}`);
      check(await row.$('a.download'), `no a.download in the row of ${p}`);
      // Clicked through a locator, found again at the click: a live refresh
      // that redraws the table meanwhile leaves the handle above detached.
      const index = rows.indexOf(row);
      const link = page.locator('#results tr[data-path]').nth(index).locator('a.download');

      const t0 = Date.now();
      const [download] = await Promise.all([
        page.waitForEvent('download', { timeout: 10000 }).catch(() => {
          throw new Failure(`clicking a.download of ${p} started no download (did it navigate to ${page.url()}?)`);
        }),
        link.click(),
      ]);
      const target = path.join(saveDir, `${paths.indexOf(p)}`);
      await download.saveAs(target);
      check(!(await download.failure()), `the download of ${p} failed: ${await download.failure()}`);
      const bytes = fs.readFileSync(target);
      timing(`download_ms(${p})`, Date.now() - t0);
      const got = sha256(bytes);
      check(bytes.length === asset['file:size'], `${p}: ${bytes.length} bytes downloaded, results.json says ${asset['file:size']}`);
      check(got === expected, `${p}: the downloaded bytes have sha256 ${got}, results.json says ${expected}`);
      log(`${p}: ${bytes.length} bytes, sha256 ${got} (saved as ${JSON.stringify(download.suggestedFilename())})`);
    }
  } finally {
    fs.rmSync(saveDir, { recursive: true, force: true });
  }
});
