// Headless Chromium as the browser tests start it (Debian's package, through puppeteer-core),
// with a watchdog so that a stuck page fails instead of hanging the Rust test.
import puppeteer from 'puppeteer-core';

export async function launch(executablePath, defaultViewport) {
  const browser = await puppeteer.launch({
    executablePath,
    headless: true,
    // Root in CI and containers: Chromium's sandbox needs user namespaces it may not have.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--no-first-run',
      '--no-default-browser-check',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-extensions',
    ],
    defaultViewport,
  });
  const watchdog = setTimeout(() => {
    console.error('the browser test took over 90 s');
    process.exit(1);
  }, 90000);
  return { browser, watchdog };
}

// Keeps `page` on the gateway's origin, as an air-gapped user's browser would be: any request
// elsewhere is aborted and recorded in `watch.offOrigin`; every WebSocket is recorded in
// `watch.sockets` (puppeteer does not see sockets as requests: they are watched through the
// DevTools protocol, whose session is returned). `watch.requests` counts the requests.
export async function keepOnOrigin(page, pageUrl, watch) {
  const { origin, host } = new URL(pageUrl);
  await page.setRequestInterception(true);
  page.on('request', (req) => {
    watch.requests = (watch.requests || 0) + 1;
    const url = req.url();
    if (/^(data|blob|about):/.test(url) || new URL(url).origin === origin) {
      req.continue();
    } else {
      watch.offOrigin.push(url);
      req.abort('blockedbyclient');
    }
  });
  const cdp = await page.createCDPSession();
  await cdp.send('Network.enable');
  cdp.on('Network.webSocketCreated', ({ url }) => {
    watch.sockets.push(url);
    if (new URL(url).host !== host) watch.offOrigin.push(url);
  });
  return cdp;
}
