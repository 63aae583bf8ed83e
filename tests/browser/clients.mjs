// Builds the client test app (`clients/app.js`: Apollo Client and urql with their caches,
// pagination, a mutation and graphql-ws subscriptions) with esbuild into `<app dir>`, which the
// Rust test serves under the gateway's own origin at `<page url>`, then runs it in headless
// Chromium (the system's, through puppeteer-core; nothing is downloaded). The page talks to the
// gateway only; when it asks for a live event, this script creates a notification for the user
// as the tenant's admin (the admin's token never reaches the page). Any error in the browser
// console, failed response or request off the origin fails it. Screenshots go to the
// artefacts directory. Prints a JSON summary on success; exits 1 with the reasons if not.
//
// usage: node clients.mjs <chromium> <page url> <config json> <admin token> <artefacts dir>
//   config: {"token", "userId", "category", "threads": [{"id", "slug", "title"}]}
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { keepOnOrigin, launch } from './chromium.mjs';

const [chromium, pageUrl, configJson, adminToken, artefacts] = process.argv.slice(2);
if (!artefacts) {
  console.error('usage: node clients.mjs <chromium> <page url> <config json> <admin token> <artefacts dir>');
  process.exit(2);
}
const here = dirname(fileURLToPath(import.meta.url));
const appDir = join(artefacts, 'app');
mkdirSync(appDir, { recursive: true });
rmSync(join(artefacts, 'failure.png'), { force: true });

const started = Date.now();
const httpUrl = new URL('/graphql', pageUrl).href;
const wsUrl = httpUrl.replace(/^http/, 'ws');
const config = { ...JSON.parse(configJson), http: httpUrl, ws: wsUrl };
const failures = [];
const consoleErrors = [];
const consoleWarnings = [];
const offOrigin = [];
const badResponses = [];
const sockets = [];
const notified = [];
const steps = {};

function step(name) {
  steps[name] = Date.now() - started;
}

// 1. The app: one bundle (development builds, so the libraries' own checks and warnings run).
const build = await esbuild.build({
  entryPoints: [join(here, 'clients', 'app.js')],
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: 'chrome120',
  sourcemap: 'inline',
  define: { 'process.env.NODE_ENV': '"development"' },
  outfile: join(appDir, 'app.js'),
  logLevel: 'silent',
  metafile: true,
});
if (build.errors.length || build.warnings.length) {
  console.error(JSON.stringify({ errors: build.errors, warnings: build.warnings }));
  process.exit(1);
}
writeFileSync(
  join(appDir, 'index.html'),
  `<!doctype html>
<html><head><meta charset="utf-8"><title>Apollo Client and urql</title>
<link rel="icon" href="data:,"></head>
<body><h1>Apollo Client and urql against the gateway</h1><ol id="log"></ol>
<script src="app.js"></script></body></html>
`,
);
const bundleBytes = Object.values(build.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
step('built');

const { browser, watchdog } = await launch(chromium, { width: 1200, height: 700 });

let page;
async function screenshot(name) {
  const path = join(artefacts, name);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** The admin's mutation that gives the user a notification (their subscription's event). */
async function notifyUser(title) {
  const res = await fetch(httpUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
    body: JSON.stringify({
      query:
        'mutation($u: ID!, $t: String!) { createNotification(input: {userId: $u, title: $t, message: "from the admin"}) { id } }',
      variables: { u: config.userId, t: title },
    }),
  });
  const body = await res.json();
  if (body.errors) throw new Error(`createNotification: ${JSON.stringify(body.errors)}`);
  notified.push(title);
  return body.data.createNotification.id;
}

try {
  page = await browser.newPage();
  page.on('console', (msg) => {
    const loc = msg.location();
    const line = `${msg.text()}${loc && loc.url ? ` (${loc.url}:${loc.lineNumber})` : ''}`;
    if (msg.type() === 'error') consoleErrors.push(line);
    if (msg.type() === 'warn') consoleWarnings.push(line);
  });
  page.on('pageerror', (err) => consoleErrors.push(`uncaught: ${err.message}`));
  page.on('response', (res) => {
    if (res.status() >= 400) badResponses.push(`${res.status()} ${res.request().method()} ${res.url()}`);
  });
  await keepOnOrigin(page, pageUrl, { offOrigin, sockets });
  await page.exposeFunction('notifyUser', notifyUser);
  await page.evaluateOnNewDocument((c) => {
    window.config = c;
  }, config);

  const main = await page.goto(pageUrl, { waitUntil: 'load', timeout: 30000 });
  if (!main || main.status() !== 200) throw new Error(`page answered ${main && main.status()}`);
  step('loaded');
  await page.waitForFunction(() => window.done === true, { timeout: 60000, polling: 100 });
  step('done');
  const results = await page.evaluate(() => window.results);
  const shots = [await screenshot('clients.png')];

  if (results.error) failures.push(`in the page: ${results.error}`);
  for (const client of ['apollo', 'urql']) {
    if (!results[client] || !results[client].event) failures.push(`${client} did not finish`);
  }
  if (sockets.length !== 2) failures.push(`expected a socket per client, saw ${JSON.stringify(sockets)}`);
  if (offOrigin.length) failures.push(`requests left the gateway's origin: ${offOrigin.join(', ')}`);
  if (consoleErrors.length) failures.push(`browser console errors:\n  ${consoleErrors.join('\n  ')}`);
  if (badResponses.length) failures.push(`failed responses: ${badResponses.join(', ')}`);
  if (failures.length) {
    console.error(failures.join('\n'));
    process.exitCode = 1;
  } else {
    console.log(
      JSON.stringify({
        results,
        steps,
        sockets,
        notified,
        warnings: consoleWarnings,
        bundleBytes,
        screenshots: shots,
        ms: Date.now() - started,
      }),
    );
  }
} catch (err) {
  if (page) await screenshot('failure.png').catch(() => {});
  const inPage = page ? await page.evaluate(() => window.results).catch(() => null) : null;
  console.error(
    [
      err.stack || String(err),
      ...failures,
      inPage ? `page results: ${JSON.stringify(inPage)}` : '',
      offOrigin.length ? `requests off the origin: ${offOrigin.join(', ')}` : '',
      consoleErrors.length ? `browser console errors:\n  ${consoleErrors.join('\n  ')}` : '',
      consoleWarnings.length ? `browser console warnings:\n  ${consoleWarnings.join('\n  ')}` : '',
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
