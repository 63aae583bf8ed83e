// Uses the gateway's GraphiQL page in headless Chromium (the system's, through puppeteer-core;
// nothing is downloaded): the page renders with no request leaving the gateway's origin, the
// headers editor takes a bearer token, a query shows its result, and a subscription shows a
// live event after a mutation. Any error in the browser console fails it. Screenshots go to
// the artefacts directory. Prints a JSON summary on success; exits 1 with the reasons if not.
//
// usage: node graphiql.mjs <chromium> <page url> <bearer token> <expected email> <artefacts dir>
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { keepOnOrigin, launch } from './chromium.mjs';

const [chromium, pageUrl, token, email, artefacts] = process.argv.slice(2);
if (!artefacts) {
  console.error('usage: node graphiql.mjs <chromium> <page url> <token> <email> <artefacts dir>');
  process.exit(2);
}
mkdirSync(artefacts, { recursive: true });
rmSync(join(artefacts, 'failure.png'), { force: true });

const started = Date.now();
const failures = [];
const consoleErrors = [];
const offOrigin = [];
const badResponses = [];
const sockets = [];
const framesSent = [];
const framesReceived = [];
const steps = {};
const watch = { offOrigin, sockets, requests: 0 };

function step(name) {
  steps[name] = Date.now() - started;
}

async function until(what, predicate, timeout = 15000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const { browser, watchdog } = await launch(chromium, { width: 1400, height: 900 });

let page;
async function screenshot(name) {
  const path = join(artefacts, name);
  await page.screenshot({ path, fullPage: false });
  return path;
}

/** The text of the CodeMirror editor inside the first element matching `selector`. */
function editorValue(selector) {
  return page.evaluate((s) => {
    const el = document.querySelector(`${s} .CodeMirror`);
    return el && el.CodeMirror ? el.CodeMirror.getValue() : null;
  }, selector);
}

/** Replaces the editor's text as a paste would: focus it, select all, insert the text. */
async function paste(selector, text) {
  await page.click(`${selector} .CodeMirror`);
  await page.evaluate((s) => {
    document.querySelector(`${s} .CodeMirror`).CodeMirror.execCommand('selectAll');
  }, selector);
  await page.keyboard.sendCharacter(text);
  const got = await editorValue(selector);
  if (got !== text) throw new Error(`editor ${selector} holds ${JSON.stringify(got)}`);
}

/** GraphiQL parses the query editor's text a moment after an edit; run after that. */
function settle() {
  return new Promise((r) => setTimeout(r, 400));
}

const HEADERS = '.graphiql-editor-tool .graphiql-editor:not(.hidden)';
const QUERY = '.graphiql-query-editor';
const RESULT = '.result-window';

try {
  page = await browser.newPage();
  page.on('console', (msg) => {
    if (msg.type() === 'error') {
      const loc = msg.location();
      consoleErrors.push(`${msg.text()}${loc && loc.url ? ` (${loc.url}:${loc.lineNumber})` : ''}`);
    }
  });
  page.on('pageerror', (err) => consoleErrors.push(`uncaught: ${err.message}`));
  page.on('response', (res) => {
    if (res.status() >= 400) badResponses.push(`${res.status()} ${res.request().method()} ${res.url()}`);
  });
  // Anything for another origin is refused and fails the test (the page's CSP would refuse
  // it too, with a console error).
  const cdp = await keepOnOrigin(page, pageUrl, watch);
  cdp.on('Network.webSocketFrameSent', ({ response }) => framesSent.push(response.payloadData));
  cdp.on('Network.webSocketFrameReceived', ({ response }) =>
    framesReceived.push(response.payloadData),
  );

  // 1. The page renders from the gateway alone.
  const main = await page.goto(pageUrl, { waitUntil: 'networkidle0', timeout: 30000 });
  if (!main || main.status() !== 200) throw new Error(`page answered ${main && main.status()}`);
  const csp = main.headers()['content-security-policy'] || '';
  if (!csp.includes("default-src 'self'") || !csp.includes("script-src 'self'")) {
    failures.push(`unexpected Content-Security-Policy: ${JSON.stringify(csp)}`);
  }
  await page.waitForSelector(`${QUERY} .CodeMirror`, { timeout: 15000 });
  await page.waitForSelector('.graphiql-execute-button', { timeout: 15000 });
  await until('the headers editor to be shown', () =>
    page.evaluate(() => {
      const tab = document.querySelector('.graphiql-editor-tools button[data-name="headers"]');
      return tab && tab.classList.contains('active');
    }),
  );
  await page.waitForSelector(`${HEADERS} .CodeMirror`, { visible: true, timeout: 15000 });
  const text = await page.evaluate(() => document.body.innerText);
  if (/Loading\.\.\./.test(text)) failures.push('"Loading..." is still on the page');
  const EXPLORER = 'button[aria-label="Show GraphiQL Explorer"]';
  if (!(await page.$(EXPLORER))) failures.push('no explorer plugin in the sidebar');
  step('rendered');
  const shots = [await screenshot('01-rendered.png')];

  // 2. The token pasted into the headers editor: the schema loads (the explorer, opened,
  // lists the root fields) and a query shows its result.
  await paste(HEADERS, JSON.stringify({ Authorization: `Bearer ${token}` }));
  // The docs, and a dialog (whose scroll lock inserts the one inline style the CSP allows, by
  // its nonce).
  await page.click('button[aria-label="Show Documentation Explorer"]');
  await until('the docs to show the schema', () =>
    page.evaluate(() => (document.querySelector('.graphiql-plugin') || {}).innerText || '')
      .then((t) => t.includes('Query') && t.includes('Subscription')),
  );
  await page.click('button[aria-label="Open settings dialog"]');
  await page.waitForSelector('[role="dialog"]', { visible: true, timeout: 5000 });
  await page.keyboard.press('Escape');
  await page.waitForSelector('[role="dialog"]', { hidden: true, timeout: 5000 });
  await page.click(EXPLORER);
  await until('the explorer to list the schema', () =>
    page.evaluate(() => {
      const pane = document.querySelector('.graphiql-plugin');
      return !!pane && pane.offsetWidth > 0 && pane.innerText.includes('forumCategories');
    }),
  );
  step('schema');
  await paste(QUERY, '{ me { email role } forumCategories(first: 1) { totalCount } }');
  await settle();
  await page.click('.graphiql-execute-button');
  const result = await until('the query result', async () => {
    const v = await editorValue(RESULT);
    return v && v.includes(email) ? v : null;
  });
  const data = JSON.parse(result).data;
  if (data.me.email !== email || data.me.role !== 'ADMIN') failures.push(`query result: ${result}`);
  step('query');
  shots.push(await screenshot('02-query.png'));

  // 3. A subscription over graphql-transport-ws on the same URL, then a mutation from
  // outside the page: the event shows up in the result pane.
  const slug = `graphiql-live-${Date.now()}`;
  await paste(
    QUERY,
    'subscription { forumCategoryChanged(where: {slug: {startsWith: "graphiql-live-"}}) ' +
      '{ op node { slug name } } }',
  );
  await settle();
  const sentBefore = framesSent.length;
  await page.click('.graphiql-execute-button');
  await until('the subscription to be acknowledged and started', () => {
    const acked = framesReceived.some((f) => f.includes('"connection_ack"'));
    const subscribed = framesSent.slice(sentBefore).some((f) => f.includes('"subscribe"'));
    return acked && subscribed;
  });
  const init = framesSent.find((f) => f.includes('"connection_init"')) || '';
  if (!init.includes(`Bearer ${token}`)) failures.push('connection_init did not carry the token');
  // The server registers the subscription right after reading `subscribe`.
  await new Promise((r) => setTimeout(r, 300));
  const res = await fetch(new URL('/graphql', pageUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({
      query: 'mutation($s: String!) { createForumCategory(input: {name: $s, slug: $s}) { id } }',
      variables: { s: slug },
    }),
  });
  const created = await res.json();
  if (created.errors) throw new Error(`mutation: ${JSON.stringify(created.errors)}`);
  const event = await until('the live event', async () => {
    const v = await editorValue(RESULT);
    return v && v.includes(slug) ? v : null;
  });
  const change = JSON.parse(event).data.forumCategoryChanged;
  if (change.op !== 'CREATED' || change.node.slug !== slug) failures.push(`event: ${event}`);
  step('subscription');
  shots.push(await screenshot('03-subscription.png'));
  // Stopping the subscription ends it on the socket.
  await page.click('.graphiql-execute-button');
  await until('the subscription to be stopped', () =>
    framesSent.some((f) => f.includes('"complete"')),
  );

  if (!sockets.length) failures.push('no WebSocket was opened');
  if (offOrigin.length) failures.push(`requests left the gateway's origin: ${offOrigin.join(', ')}`);
  if (consoleErrors.length) failures.push(`browser console errors:\n  ${consoleErrors.join('\n  ')}`);
  if (badResponses.length) failures.push(`failed responses: ${badResponses.join(', ')}`);
  if (failures.length) {
    console.error(failures.join('\n'));
    process.exitCode = 1;
  } else {
    console.log(
      JSON.stringify({ steps, requests: watch.requests, sockets, screenshots: shots, ms: Date.now() - started }),
    );
  }
} catch (err) {
  if (page) await screenshot('failure.png').catch(() => {});
  console.error(
    [
      err.stack || String(err),
      ...failures,
      offOrigin.length ? `requests off the origin: ${offOrigin.join(', ')}` : '',
      consoleErrors.length ? `browser console errors:\n  ${consoleErrors.join('\n  ')}` : '',
      badResponses.length ? `failed responses: ${badResponses.join(', ')}` : '',
    ]
      .filter(Boolean)
      .join('\n'),
  );
  process.exitCode = 1;
} finally {
  clearTimeout(watchdog);
  await browser.close();
}
