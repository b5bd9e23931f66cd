// Starting the `dashboard` example for the browser tests and the README's screenshot.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";

export const ROOT = new URL("../../../", import.meta.url).pathname;
export const DEMO = process.env.SURGEWALL_DASHBOARD_BIN || `${ROOT}target/debug/examples/dashboard`;
export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

/** Starts the example on port 0 and reads its URL from the first line it prints. Its token
 * comes from `env` only (none by default), whatever the caller's environment holds. */
export async function startDemo(flags = [], env = {}) {
  const inherited = { ...process.env };
  delete inherited.SURGEWALL_AGENT_TOKEN;
  delete inherited.SURGEWALL_AGENT_TOKEN_FILE;
  const child = spawn(DEMO, ["--port", "0", "--seconds", "600", ...flags], {
    env: { ...inherited, ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const firstLine = new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).once("line", resolve);
    child.once("exit", (code) => reject(new Error(`${DEMO} exited with ${code} before printing its URL`)));
    child.once("error", reject);
  });
  const url = await withTimeout(firstLine, 30000, `${DEMO} printed no URL`);
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
  return { url, stop: () => child.kill() };
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(what)), ms); });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

