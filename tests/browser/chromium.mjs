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
