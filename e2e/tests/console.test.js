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
let hostileTicket; // member03's routine ticket on the North team

/** Accept the confirmation dialogs the next actions raise (the harness dismisses them by default). */
function acceptDialogs(page) {
  page.removeAllListeners("dialog");
  page.on("dialog", (d) => d.accept());
}

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
  // Staff attach files to replies too; the file is scanned before anyone can open it.
  await page.getByLabel("Reply (the member sees this)").fill("Here are the instructions we discussed.");
  await page.getByLabel(/Attach files/).setInputFiles({
    name: "after-care.txt",
    mimeType: "text/plain",
    buffer: Buffer.from("Rest, fluids, and call 911 if the pain comes back.\n"),
  });
  const replied = page.waitForResponse((r) => r.url().endsWith("/replies") && r.request().method() === "POST");
  await page.getByRole("button", { name: "Send reply" }).click();
  assert.equal((await replied).status(), 201);
  await page.locator(".attachments", { hasText: "after-care.txt" }).first().waitFor();
  await nurse.context.close();
});

test("agent1 types a call note and watches live triage turn red, with the emergency script", async () => {
  const { page, context } = await signIn(env, "agent1");
  await page.goto("/console/calls");
  await page.getByLabel(/Name, phone/).fill("ellis");
  await page.getByRole("button", { name: "Search" }).click();
  await page.locator(".results a", { hasText: "Margaret Ellis" }).click();
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
  hostileTicket = new URL(member.page.url()).hash.slice(3);
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
  await page.getByLabel("Your message").fill("here is the photo the nurse asked for");
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

test("agent1 finds callers by name without accents, by phone and by birth date, and the search is in the member's history", async () => {
  const { page, context } = await signIn(env, "agent1");
  await page.goto("/console/calls");
  const box = page.getByLabel(/Name, phone/);
  const search = page.getByRole("button", { name: "Search" });
  await box.fill("lucia fernandez");
  await search.click();
  const results = page.locator(".results li");
  await results.first().waitFor();
  assert.deepEqual(await page.locator(".results a").allInnerTexts(), ["Lucía Fernández"]);
  assert.match(await results.first().innerText(), /1962-05-09/);
  await shot(page, "console-call-intake-search");
  for (const q of ["555-0101", "1946-03-14", "DEMO-0001"]) {
    await box.fill(q);
    await search.click();
    await page.waitForURL((u) => u.searchParams.get("q") === q);
    assert.deepEqual(await page.locator(".results a").allInnerTexts(), ["Margaret Ellis"], q);
  }
  // One character is not a search: the server says so (the browser would not even send it).
  await page.goto("/console/calls?q=a");
  assert.match(await page.locator(".notice.error").innerText(), /at least 2 characters/);
  await context.close();

  const member = await signIn(env, "member01");
  await member.page.getByRole("link", { name: "Who looked at my record" }).click();
  const row = member.page.locator("table.access tbody tr", { hasText: "found you in a search" }).first();
  await row.waitFor();
  assert.match(await row.innerText(), /Alex Agent/);
  await member.context.close();
});

test("member01 chooses what to share and who may act for them, and a caregiver steps back", async () => {
  const { page, context } = await signIn(env, "member01");
  acceptDialogs(page);
  await page.getByRole("link", { name: "Sharing" }).click();
  await page.getByRole("heading", { name: "Sensitive health information" }).waitFor();
  const bh = page.locator('[data-category="behavioral_health"]');
  assert.match(await bh.innerText(), /Only your care team sees it/);
  await bh.getByRole("button", { name: "Share" }).click();
  await bh.getByRole("button", { name: "Stop sharing" }).waitFor();
  assert.match(await bh.innerText(), /Shared with the clinicians/);
  assert.equal(await page.locator(".consent.on").count(), 1);
  const consents = await page.evaluate(async () => {
    const me = await (await fetch("/api/v1/me")).json();
    return (await (await fetch(`/api/v1/members/${me.member_id}/consents`)).json()).consented;
  });
  assert.deepEqual(consents, ["behavioral_health"]);

  // A caregiver for messages only, until a date.
  await page.getByLabel("Caregiver's username").fill("proxy07@demo.careline");
  await page.getByLabel(/^Messages:/).check();
  await page.getByLabel("Until (optional)").fill("2099-12-31T18:00");
  await page.getByRole("button", { name: "Give access" }).click();
  const carer = page.locator("[data-caregiver]");
  await carer.first().waitFor();
  assert.match(await carer.first().innerText(), /Messages: reads and writes/);
  assert.match(await carer.first().innerText(), /2099/);
  await shot(page, "portal-sharing");
  // An unknown username is refused in words.
  await page.getByLabel("Caregiver's username").fill("nobody@demo.careline");
  await page.getByRole("button", { name: "Give access" }).click();
  await page.locator("form[data-api$='/proxies'] .notice.error").waitFor();
  // Ending the access asks first, then the caregiver is gone.
  await carer.first().getByRole("button", { name: /End access/ }).click();
  await page.locator("[data-caregiver]").first().waitFor({ state: "detached" });
  // Withdraw the consent again.
  await page.locator('[data-category="behavioral_health"]').getByRole("button", { name: "Stop sharing" }).click();
  await page.locator('[data-category="behavioral_health"]').getByRole("button", { name: "Share" }).waitFor();
  await context.close();

  // In Spanish, for member05.
  const es = await signIn(env, "member05");
  await es.page.getByRole("link", { name: "Compartir" }).click();
  await es.page.getByRole("heading", { name: "Información de salud delicada" }).waitFor();
  assert.match(await es.page.locator('[data-category="hiv"]').innerText(), /VIH/);
  await es.page.getByRole("heading", { name: "Cuidadores", exact: true }).waitFor();
  await es.context.close();

  // proxy07 sees whom they help, with the scope, and steps back.
  const carerCtx = await signIn(env, "proxy07");
  acceptDialogs(carerCtx.page);
  await carerCtx.page.goto("/portal/sharing");
  const helping = carerCtx.page.locator("[data-helping]");
  await helping.first().waitFor();
  assert.equal(await helping.count(), 1);
  assert.match(await helping.first().innerText(), /Everything|Messages|Record/);
  await shot(carerCtx.page, "portal-caregiver");
  await helping.first().getByRole("button", { name: /Step back/ }).click();
  await carerCtx.page.getByText("You do not act for anyone at the moment.").waitFor();
  await carerCtx.context.close();
});

test("nurse.south is outside member03's care team, breaks the glass with a reason, and the ticket opens", async () => {
  const { page, context } = await signIn(env, "nurse.south");
  acceptDialogs(page);
  const resp = await page.goto(`/console/tickets/${hostileTicket}`);
  assert.equal(resp.status(), 403);
  await page.getByRole("heading", { name: "You are not on this member's care team" }).waitFor();
  assert.match(await page.locator(".notice.warn").innerText(), /care team/);
  await shot(page, "console-break-glass");
  // The reason is required (the browser stops an empty one; the server a short one).
  await page.getByLabel(/Reason/).fill("short");
  await page.getByLabel(/Reason/).evaluate((el) => el.removeAttribute("minlength"));
  await page.getByRole("button", { name: "Break the glass" }).click();
  await page.locator(".glass .notice.error").waitFor();
  await page.getByLabel(/Reason/).fill("Covering the North desk: member called about worsening knee swelling");
  await page.getByRole("button", { name: "Break the glass" }).click();
  await page.locator(".msg.member .body", { hasText: "my knee hurts" }).waitFor();
  await context.close();

  // The privacy officers have it to review.
  const privacy = await signIn(env, "privacy");
  assert.match(await privacy.page.locator("main").innerText(), /Covering the North desk/);
  await privacy.context.close();
});

test("the dashboard draws time to clinician for emergencies and urgent contacts separately", async () => {
  const { page, context } = await signIn(env, "supervisor");
  await page.goto("/console/dashboard");
  await page.getByRole("heading", { name: "Time to clinician, by disposition" }).waitFor();
  assert.equal(await page.locator('figure[data-disposition="emergency"] svg.chart').count(), 2);
  assert.equal(await page.locator('figure[data-disposition="urgent"] svg.chart').count(), 2);
  const ack = page.locator('figure[data-disposition="emergency"]').first();
  assert.match(await ack.locator("figcaption").innerText(), /[1-9]\d* acknowledged, median/);
  assert.match(await ack.locator("svg title").textContent(), /Time to acknowledgement, emergency/);
  await shot(page, "console-dashboard-by-disposition");
  await context.close();
});
