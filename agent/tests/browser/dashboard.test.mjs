// The dashboard in a real browser: Debian's chromium, headless, driven by playwright-core,
// against the `dashboard` example on a free loopback port. Each test leaves a screenshot in
// target/browser-artifacts/.
//
//   make test-dashboard                       (builds the example, installs playwright-core)
//   CHROMIUM=/path/to/chrome node --test dashboard.test.mjs
//
// Tests that need the agent's live stream (GET /api/resilience/ws) skip, saying so, when the
// agent's OpenAPI document does not list it; everything else runs on the polling fallback.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";
import { CHROMIUM, ROOT, startDemo } from "./demo.mjs";

const ARTIFACTS = `${ROOT}target/browser-artifacts`;
const API = "/api/resilience";

/** A REST call from the test (no Origin, as a tool sends it). */
async function rest(demo, path, method = "GET", headers = {}) {
  const r = await fetch(new URL(`${API}/${path}`, demo.url), { method, headers });
  return { status: r.status, body: await r.json() };
}

async function breakerState(demo, name) {
  const r = await rest(demo, `circuit-breakers/${encodeURIComponent(name)}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.state;
}

/** Polls `check` until it holds or `ms` pass. */
async function eventually(check, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) assert.fail(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function streamOffered(demo) {
  const doc = await rest(demo, "openapi.json");
  return `${API}/ws` in doc.body.paths;
}

let browser;
let demo;

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  demo = await startDemo();
});

after(async () => {
  demo?.stop();
  await browser?.close();
});

/** A fresh page on the dashboard, recording console errors and uncaught exceptions. */
async function openDashboard(t, url = demo.url, viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  t.after(() => context.close());
  return { page, errors, context };
}

/** Opens the dashboard and waits for its first rows. */
async function goLive(page, url = demo.url) {
  await page.goto(url);
  await page.waitForSelector('#link:not([data-transport="connecting"])');
  await page.waitForSelector("#breaker-rows tr");
}

/** The page renders on the next animation frame after a change: two frames on, it is in. */
function rendered(page) {
  return page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
}

const rowNames = (page) => page.evaluate(() =>
  [...document.querySelectorAll("#breaker-rows tr")].map((tr) => tr.dataset.name));

function screenshot(page, name) {
  return page.screenshot({ path: `${ARTIFACTS}/${name}.png`, fullPage: true });
}

test("the page loads with no console error", async (t) => {
  const { page, errors } = await openDashboard(t);
  await goLive(page);
  // A few updates' worth of time, so errors in updating (not only loading) show too.
  await page.waitForTimeout(1500);
  assert.deepEqual(errors, []);
  assert.match(await page.locator("#link").getAttribute("data-transport"), /^(websocket|sse|polling)$/);
  // States are told in words, not colour alone; every button says what it acts on.
  const badge = await page.locator('tr[data-name="fraud-check"] .state').innerText();
  assert.match(badge, /Forced open/);
  const unlabelled = await page.locator("button[data-action]:not([aria-label])").count();
  assert.equal(unlabelled, 0);
  assert.equal(await page.locator('#timeline[aria-live="polite"]').count(), 1);
  await screenshot(page, "loads");
});

test("a transition the test causes appears within a second, without a reload", async (t) => {
  const { page } = await openDashboard(t);
  await goLive(page);
  let navigations = 0;
  page.on("framenavigated", () => navigations++);
  await page.waitForSelector('tr[data-name="search"][data-state="closed"]');
  t.after(() => rest(demo, "circuit-breakers/search/reset", "POST"));

  const forced = await rest(demo, "circuit-breakers/search/force-open", "POST");
  assert.equal(forced.body.state, "forced_open");
  await page.waitForSelector('tr[data-name="search"][data-state="forced_open"]', { timeout: 1000 });
  const row = await page.locator('tr[data-name="search"] .state').innerText();
  assert.match(row, /Forced open/);
  await page.locator("#timeline li", { hasText: "search" }).filter({ hasText: "Forced open" }).first()
    .waitFor({ timeout: 200 });
  assert.equal(navigations, 0, "the page reloaded");
  await screenshot(page, "transition");
});

test("clicking reset closes the breaker", async (t) => {
  const { page } = await openDashboard(t);
  await goLive(page);
  await rest(demo, "circuit-breakers/search/force-open", "POST");
  await page.waitForSelector('tr[data-name="search"][data-state="forced_open"]');

  await page.getByRole("button", { name: "Reset search", exact: true }).click();
  await eventually(async () => (await breakerState(demo, "search")) === "closed", 2000,
    "the REST API reads search as closed");
  await page.waitForSelector('tr[data-name="search"][data-state="closed"]', { timeout: 1000 });
  await screenshot(page, "reset");
});

test("a change without the token asks for it, and goes through with it", async (t) => {
  const guarded = await startDemo(["--breakers", "8"], { SURGEWALL_AGENT_TOKEN: "s3cret-token" });
  t.after(() => guarded.stop());
  const { page, errors } = await openDashboard(t);
  await goLive(page, guarded.url);

  await page.getByRole("button", { name: "Force open search", exact: true }).click();
  await page.waitForSelector("#token-form:not([hidden])");
  await page.waitForSelector("#notice:has-text('needs its token')");
  assert.equal(await breakerState(guarded, "search"), "closed");

  await page.getByLabel("Token", { exact: true }).fill("s3cret-token");
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByRole("button", { name: "Force open search", exact: true }).click();
  await eventually(async () => (await breakerState(guarded, "search")) === "forced_open", 2000,
    "the REST API reads search as forced open");
  await page.waitForSelector('tr[data-name="search"][data-state="forced_open"]', { timeout: 1000 });
  // The one console error allowed: the browser reports the refused POST (401).
  assert.ok(errors.every((e) => /401/.test(e)), errors.join("\n"));
  await screenshot(page, "token");
});

test("a dropped WebSocket reconnects (needs the stream)", async (t) => {
  if (!(await streamOffered(demo))) {
    t.skip(`needs the live stream: the agent does not offer ${API}/ws yet`);
    return;
  }
  const { page } = await openDashboard(t);
  const sockets = [];
  // The page's socket runs through playwright, which passes frames to the agent and lets the
  // test drop the page's side as a server going away would.
  await page.routeWebSocket(/\/api\/resilience\/ws$/, (ws) => {
    ws.connectToServer();
    sockets.push(ws);
  });
  await goLive(page);
  await page.waitForSelector('#link[data-transport="websocket"]');
  assert.equal(sockets.length, 1);

  await sockets[0].close({ code: 1012, reason: "the test drops it" });
  await page.waitForSelector('#link[data-transport="reconnecting"]', { timeout: 2000 });
  await page.waitForSelector('#link[data-transport="websocket"]', { timeout: 5000 });
  assert.equal(sockets.length, 2, "one new socket");

  // The new socket delivers: a transition caused now shows within a second.
  t.after(() => rest(demo, "circuit-breakers/search/reset", "POST"));
  await rest(demo, "circuit-breakers/search/force-open", "POST");
  await page.waitForSelector('tr[data-name="search"][data-state="forced_open"]', { timeout: 1000 });
  await screenshot(page, "reconnected");
});

test("without the stream the page falls back to polling the REST API, and goes back to the stream", async (t) => {
  const { page } = await openDashboard(t);
  // Whatever the agent offers, the stream's endpoints fail here, until `failing` is cleared.
  let failing = true;
  await page.routeWebSocket(/\/api\/resilience\/ws$/, (ws) => {
    if (failing) ws.close({ code: 1011 });
    else ws.connectToServer();
  });
  await page.route(/\/api\/resilience\/events$/, (route) => (failing ? route.abort() : route.continue()));
  await goLive(page, `${demo.url}?upgrade_ms=1500`);
  await page.waitForSelector('#link[data-transport="polling"]', { timeout: 5000 });
  t.after(() => rest(demo, "circuit-breakers/search/reset", "POST"));
  await rest(demo, "circuit-breakers/search/disable", "POST");
  await page.waitForSelector('tr[data-name="search"][data-state="disabled"]', { timeout: 1000 });
  await screenshot(page, "polling");
  // The stream comes back: the page leaves polling for it at its next try.
  failing = false;
  await page.waitForSelector('#link[data-transport="websocket"]', { timeout: 5000 });
});

test("the 1,000-breaker page renders and filters", async (t) => {
  const big = await startDemo(["--breakers", "1000"]);
  t.after(() => big.stop());
  const { page, errors } = await openDashboard(t);
  await goLive(page, big.url);

  const shown = page.locator("#shown");
  await page.waitForFunction(() => document.querySelectorAll("#breaker-rows tr").length === 200);
  assert.match(await shown.innerText(), /showing 200 of 1000 matching \(1000 breakers\)/);
  await page.getByRole("button", { name: "Show 200 more" }).click();
  await page.waitForFunction(() => document.querySelectorAll("#breaker-rows tr").length === 400);

  await page.getByRole("searchbox", { name: "Search" }).fill("svc-0999");
  await rendered(page);
  assert.deepEqual(await rowNames(page), ["svc-0999"]);

  await page.getByRole("searchbox", { name: "Search" }).fill("");
  await page.getByLabel("State", { exact: true }).selectOption("disabled");
  await rendered(page);
  assert.deepEqual(await rowNames(page), ["legacy-billing"]);

  await page.getByLabel("State", { exact: true }).selectOption("");
  await page.getByLabel("Sort", { exact: true }).selectOption("failure");
  await page.waitForFunction(() => document.querySelectorAll("#breaker-rows tr").length === 200);
  await rendered(page);
  // One evaluation reads the rows and their text together ($$eval finds the rows first and
  // reads them in a later task, when a render may have moved them).
  const rates = await page.evaluate(() => [...document.querySelectorAll("#breaker-rows tr td:nth-child(4)")]
    .map((td) => (td.textContent === "—" ? -1 : parseFloat(td.textContent))));
  // Each render sorts the rows and writes them from the same model: what shows is in order.
  const misordered = rates.findIndex((r, i) => i > 0 && r > rates[i - 1]);
  assert.equal(misordered, -1, `row ${misordered} out of order: ${rates.slice(Math.max(0, misordered - 3), misordered + 3)}`);
  assert.ok(rates[0] > 0, "some breaker fails");
  await screenshot(page, "thousand");

  // A phone's width: nothing overflows sideways.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.getByRole("searchbox", { name: "Search" }).fill("svc-00");
  await rendered(page);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow} px wider than the phone`);
  await page.screenshot({ path: `${ARTIFACTS}/thousand-phone.png` });
  assert.deepEqual(errors, []);
});
