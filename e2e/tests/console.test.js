// The console and portal in a real browser against the real binary with the
// demo organization. The steps share one server and run in order: a red
// flag written by a member reaches the nurse's open console live, the care
// guide meets the interlock, the nurse clears it, and so on.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { start, signIn, shot } from "../harness.js";

const CHEST = "crushing chest pain for 20 minutes and sweating";

let env;
let nurse; // nurse.north, console open before the member writes
let ticketId; // the red-flag ticket

before(async () => {
  env = await start();
});

after(async () => {
  if (env) await env.stop();
});

test("nurse.north's console is open and live before anything happens", async () => {
  nurse = await signIn(env, "nurse.north");
  assert.equal(new URL(nurse.page.url()).pathname, "/console");
  await nurse.page.waitForSelector("html[data-live=on]", { timeout: 10_000 });
  assert.equal(await nurse.page.locator(".banner").count(), 0, "no banner before any red flag");
});

test("member01 writes about chest pain and sees the emergency guidance at once", async () => {
  const { page, context } = await signIn(env, "member01");
  await page.getByLabel("Your message").fill(CHEST);
  const sent = page.waitForResponse((r) => r.url().endsWith("/api/v1/messages") && r.request().method() === "POST");
  await page.getByRole("button", { name: "Send" }).click();
  const body = await (await sent).json();
  ticketId = body.ticket.id;
  const guidance = page.locator("[data-emergency]");
  await guidance.waitFor({ state: "visible" });
  const text = await guidance.innerText();
  assert.match(text, /911/);
  assert.match(text, /chest pain/i);
  await shot(page, "portal-emergency-guidance");
  await context.close();
});

test("the page appears on the nurse's open console without a reload, and Alt+Shift+A acknowledges it", async () => {
  const { page } = nurse;
  const banner = page.locator(".banner");
  await banner.waitFor({ state: "visible", timeout: 10_000 });
  assert.match(await banner.innerText(), /Escalations need you/);
  // The ticket list refreshed too.
  await page.locator(`a[href="/console/tickets/${ticketId}"]`).first().waitFor();
  await shot(page, "console-escalation-banner");
  const acked = page.waitForResponse((r) => /\/api\/v1\/pages\/[^/]+\/ack$/.test(r.url()));
  await page.keyboard.press("Alt+Shift+A");
  assert.equal((await acked).status(), 200);
  await banner.waitFor({ state: "detached", timeout: 10_000 });
});

test("guide.north1 tries to close the red-flag ticket and is told a clinician must decide first", async () => {
  const { page, context } = await signIn(env, "guide.north1");
  await page.goto(`/console/tickets/${ticketId}`);
  await page.getByLabel("New status").selectOption("solved");
  await page.getByRole("button", { name: "Change status" }).click();
  const notice = page.locator(".notice.interlock[data-error]");
  await notice.waitFor({ state: "visible" });
  const text = await notice.innerText();
  assert.match(text, /clinician must decide first/i);
  assert.match(text, /red flag/i);
  // The evidence is marked in the member's words.
  assert.match(await page.locator("mark.evidence").first().innerText(), /chest pain/i);
  await shot(page, "console-interlock");
  await context.close();
});

test("the nurse records a clinical clearance and the ticket shows it", async () => {
  const { page } = nurse;
  await page.goto(`/console/tickets/${ticketId}`);
  await page.getByLabel("Your disposition").selectOption("emergency");
  await page.getByLabel("Decision and reasons").fill("Spoke to member, ambulance called, ED notified.");
  await page.getByRole("button", { name: "Record clearance" }).click();
  await page.getByText(/Cleared by .*nurse/).waitFor();
  assert.equal(await page.locator(".panel-col .notice.interlock").count(), 0);
  await shot(page, "console-ticket-cleared");
  await nurse.context.close();
});

test("agent1 types a call note and watches live triage turn red, with the emergency script", async () => {
  const { page, context } = await signIn(env, "agent1");
  await page.goto("/console/calls");
  await page.getByLabel("Member name").fill("a");
  await page.getByRole("button", { name: "Search" }).click();
  await page.locator(".results a").first().click();
  const notes = page.getByLabel("What the caller says");
  await notes.pressSequentially("caller asks about a refill", { delay: 5 });
  await page.locator("#live-triage.routine").waitFor();
  await notes.pressSequentially(". now has crushing chest pain and is sweating", { delay: 5 });
  await page.locator("#live-triage.emergency").waitFor();
  const script = page.locator("[data-script]");
  await script.waitFor({ state: "visible" });
  assert.match(await script.innerText(), /911/);
  await shot(page, "console-call-intake-live-triage");
  await page.getByRole("button", { name: "Save call" }).click();
  await page.locator("[data-result]").getByText(/emergency ticket/).waitFor();
  await context.close();
});

test("a message with <script> and <img onerror> renders as text in the portal and the console", async () => {
  const hostile = `<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> my knee hurts`;
  const member = await signIn(env, "member03");
  await member.page.getByLabel("Your message").fill(hostile);
  await member.page.getByRole("button", { name: "Send" }).click();
  await member.page.waitForURL(/\/portal\/threads\/.*#t-/);
  const hostileTicket = new URL(member.page.url()).hash.slice(3);
  const body = member.page.locator(".msg.member .body").last();
  await body.waitFor();
  assert.equal(await body.innerText(), hostile);
  assert.equal(await member.page.evaluate(() => window.__pwned), undefined);
  assert.equal(await member.page.locator(".msg img").count(), 0);
  await member.context.close();

  const guide = await signIn(env, "guide.north1");
  // The list shows the member's name as text too.
  await guide.page.locator(`a[href="/console/tickets/${hostileTicket}"]`).click();
  await guide.page.locator(".msg.member .body", { hasText: "my knee hurts" }).waitFor();
  assert.equal(await guide.page.evaluate(() => window.__pwned), undefined);
  assert.equal(await guide.page.locator(".msg img").count(), 0);
  await guide.context.close();
});

test("member01 sees who looked at their record", async () => {
  const { page, context } = await signIn(env, "member01");
  await page.getByRole("link", { name: "Who looked at my record" }).click();
  const rows = page.locator("table.access tbody tr");
  await rows.first().waitFor();
  assert.match(await page.locator("table.access").innerText(), /nurse/);
  await context.close();
});

test("member05 reads the portal in Spanish and can switch to English", async () => {
  const { page, context } = await signIn(env, "member05");
  await page.getByRole("heading", { name: "Su equipo de atención", exact: true }).waitFor();
  assert.equal(await page.locator("html").getAttribute("lang"), "es");
  await page.getByRole("link", { name: "English" }).click();
  await page.getByRole("heading", { name: "Your care team", exact: true }).waitFor();
  await context.close();
});

test("the portal works at phone width", async () => {
  const { page, context } = await signIn(env, "member01", { width: 375, height: 740 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `page is ${overflow}px wider than the phone`);
  await shot(page, "portal-phone");
  await context.close();
});

test("the supervisor's dashboard draws its charts", async () => {
  const { page, context } = await signIn(env, "supervisor");
  await page.goto("/console/dashboard");
  assert.ok((await page.locator("svg.chart").count()) >= 4);
  await shot(page, "console-dashboard");
  await context.close();
});

test("a member uploads a file and sees its scan state", async () => {
  const { page, context } = await signIn(env, "member02");
  await page.getByLabel("Your message").fill("photo of the rash on my arm");
  await page.getByLabel(/Attach/).setInputFiles({
    name: "rash.png",
    mimeType: "image/png",
    buffer: Buffer.from(
      "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==",
      "base64",
    ),
  });
  await page.getByRole("button", { name: "Send" }).click();
  // Upload, send, then the thread opens (too fast to watch the upload list).
  await page.waitForURL(/\/portal\/threads\//);
  const state = page.locator(".attachments .scan").first();
  await state.waitFor();
  assert.match(await state.innerText(), /quarantined|scanning|clean/);
  // The real clamd releases it; then the file name links to its download.
  const until = Date.now() + 15_000;
  while (!/clean/.test(await state.innerText()) && Date.now() < until) {
    await page.waitForTimeout(300);
    await page.reload();
  }
  assert.match(await state.innerText(), /clean/);
  assert.ok(await page.locator(".attachments a[href$='/content']").count());
  await shot(page, "portal-attachment");
  await context.close();
});
