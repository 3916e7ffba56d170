// Test harness: starts the real careline binary on a free port with the demo
// organization in a fresh data directory, launches Debian's Chromium through
// playwright-core, and gives each test signed-in browser contexts.
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const ARTIFACTS = process.env.E2E_ARTIFACTS || join(here, "artifacts");
export const PASSWORD = "careline-demo";

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

async function waitReady(base, child, log) {
  const until = Date.now() + 30_000;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error("careline exited early:\n" + log.join(""));
    try {
      const r = await fetch(base + "/readyz");
      if (r.ok) return;
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error("careline did not become ready in 30 s:\n" + log.join(""));
}

/** Start careline and Chromium; returns handles and a stop function. */
export async function start() {
  const bin = process.env.CARELINE_BIN;
  if (!bin) throw new Error("set CARELINE_BIN to the careline binary (e2e/run.sh does)");
  mkdirSync(ARTIFACTS, { recursive: true });
  const dataDir = mkdtempSync(join(tmpdir(), "careline-e2e-"));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const log = [];
  const child = spawn(bin, ["serve", "--demo", "--data-dir", join(dataDir, "data"), "--listen", `127.0.0.1:${port}`], {
    env: { ...process.env, CARELINE_LOG: process.env.CARELINE_LOG || "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.on("data", (d) => log.push(String(d)));
  child.stderr.on("data", (d) => log.push(String(d)));
  await waitReady(base, child, log);
  // A fresh profile for every run: launch() creates and removes its own.
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  async function stop() {
    await browser.close().catch(() => {});
    child.kill("SIGTERM");
    await new Promise((r) => (child.exitCode !== null ? r() : child.on("exit", r)));
    rmSync(dataDir, { recursive: true, force: true });
  }
  return { base, browser, stop, log };
}

/** A new browser context signed in through the real login form. */
export async function signIn(env, user, viewport) {
  const context = await env.browser.newContext({ baseURL: env.base, viewport: viewport || { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.on("dialog", (d) => d.dismiss());
  await page.goto("/login");
  await page.getByLabel("Username").fill(`${user}@demo.careline`);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL((u) => !u.pathname.startsWith("/login"));
  return { context, page };
}

export async function shot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}
