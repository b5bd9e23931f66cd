// The README's picture of the dashboard: the example once a breaker is open and the timeline
// holds six transitions (under a minute in). `make dashboard-screenshot` writes docs/dashboard.png.

import { chromium } from "playwright-core";
import { CHROMIUM, ROOT, startDemo } from "./demo.mjs";

const demo = await startDemo(["--breakers", "16"]);
const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  await page.goto(demo.url);
  const busy = () => document.querySelectorAll('tr[data-state="open"]').length >= 1 &&
    document.querySelectorAll("#timeline li:not(.muted)").length >= 6;
  await page.waitForFunction(busy, null, { timeout: 90000, polling: 100 });
  await page.screenshot({ path: `${ROOT}docs/dashboard.png`, fullPage: true });
} finally {
  await browser.close();
  demo.stop();
}
