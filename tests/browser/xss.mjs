// What jobs write is shown as text, never as HTML: a title, a tag, log lines and
// a result file name made of markup show literally, create no element and run
// no script (window.__xss stays undefined).
// Arguments: url, root, id (a succeeded job with such a title, tag, logs and
// result), title, tag, marker (a string its stdout holds), result (its result path).
import { check, Failure, open, scenario, textOf } from './lib.mjs';

async function injected(page) {
  return page.evaluate(() => ({
    xss: window.__xss,
    elements: [...document.querySelectorAll('img, svg, script:not([src]), iframe, object, embed')]
      .filter((el) => el.tagName !== 'SCRIPT' || /__xss/.test(el.textContent))
      .map((el) => el.outerHTML.slice(0, 120)),
  }));
}

scenario('xss', async ({ args, page }) => {
  const { id, title, tag, marker, result } = args;
  await open(page, '/');
  const row = `#jobs tr[data-job-id="${id}"]`;
  check(await page.$(row), `no row for ${id}`);
  const cell = (await textOf(page, `${row} td[data-col="title"]`)) || '';
  check(cell.includes(title), `the title cell shows ${JSON.stringify(cell)}, not the title's text ${JSON.stringify(title)}`);
  let found = await injected(page);
  check(found.xss === undefined, `window.__xss = ${JSON.stringify(found.xss)} on /: the job's markup ran`);
  check(found.elements.length === 0, `the job's markup made elements on /: ${found.elements.join(' | ')}`);

  await open(page, `/jobs/${id}`);
  const text = await page.evaluate(() => document.body.innerText);
  check(text.includes(title), `/jobs/${id} does not show the title as text`);
  check(text.includes(tag), `/jobs/${id} does not show the tag as text`);
  const out = (await textOf(page, '#log-stdout')) || '';
  if (!out.includes(marker)) throw new Failure(`#log-stdout does not show ${JSON.stringify(marker)} as text: ${JSON.stringify(out.slice(0, 300))}`);
  const paths = await page.$$eval('#results tr[data-path]', (rows) => rows.map((r) => r.dataset.path));
  check(paths.includes(result), `no #results row with data-path ${JSON.stringify(result)} (rows: ${JSON.stringify(paths)})`);
  found = await injected(page);
  check(found.xss === undefined, `window.__xss = ${JSON.stringify(found.xss)} on /jobs/${id}: the job's markup ran`);
  check(found.elements.length === 0, `the job's markup made elements on /jobs/${id}: ${found.elements.join(' | ')}`);
});
