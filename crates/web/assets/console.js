// careline's page script: the whole front end, written for this project.
//
// The server renders every page and every fragment as HTML. This script only
// (1) sends forms to the JSON API with the session's CSRF token and shows the
// answer, (2) listens on the event stream (GET /api/v1/events) and re-fetches
// the server-rendered fragments that an event concerns, swapping them in,
// (3) keeps countdowns and local times current, and (4) runs live triage on
// call notes. That is the model of a fragment-swapping library, done with
// fetch and EventSource in a few hundred lines, so nothing third-party is
// shipped. No inline script is needed: the page policy allows only this file.
"use strict";

(function () {
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  let csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";

  async function api(method, url, body, extraHeaders) {
    const headers = Object.assign({ accept: "application/json" }, extraHeaders || {});
    if (csrf) headers["x-csrf-token"] = csrf;
    let payload;
    if (body instanceof FormData) {
      payload = body;
    } else if (body !== undefined) {
      headers["content-type"] = "application/json";
      payload = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(url, { method, headers, body: payload, credentials: "same-origin" });
    } catch (e) {
      return { ok: false, status: 0, data: { detail: "The network is unavailable. Nothing was sent; try again." } };
    }
    let data = null;
    const text = await resp.text();
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = { detail: text.slice(0, 300) }; }
    }
    if (resp.status === 401 && !url.endsWith("/sessions")) {
      location.href = "/login";
    }
    return { ok: resp.ok, status: resp.status, data: data || {} };
  }

  // Shows a refusal as what it is: the red-flag interlock is a rule doing its
  // job, not a fault, so it gets its own wording and look.
  function showProblem(box, res) {
    if (!box) return;
    const type = (res.data && res.data.type) || "";
    const detail = (res.data && (res.data.detail || res.data.title)) || ("Request failed (" + res.status + ")");
    box.textContent = "";
    box.className = "notice";
    if (type.endsWith("/red-flag-uncleared")) {
      box.classList.add("interlock");
      const h = document.createElement("strong");
      h.textContent = "A clinician must decide first. ";
      box.appendChild(h);
      box.appendChild(document.createTextNode(detail));
    } else {
      box.classList.add("error");
      box.textContent = detail;
    }
    box.hidden = false;
    box.focus && box.setAttribute("tabindex", "-1");
  }

  function formBody(form) {
    const out = {};
    for (const el of form.elements) {
      if (!el.name || el.disabled || el.type === "file" || el.type === "submit") continue;
      if ((el.type === "radio" || el.type === "checkbox") && !el.checked) continue;
      let v = el.value;
      const kind = el.dataset.type;
      if (kind === "bool") v = v === "true";
      else if (kind === "uuid-or-null") v = v === "" ? null : v;
      else if (kind === "datetime") v = v ? new Date(v).toISOString() : "";
      if (el.hasAttribute("data-optional") && v === "") continue;
      out[el.name] = v;
    }
    return out;
  }

  // ---- forms that call the API ----
  document.addEventListener("submit", async function (ev) {
    const form = ev.target;
    if (form.matches("form[data-api]")) {
      ev.preventDefault();
      await submitApi(form);
    } else if (form.matches("form[data-login]")) {
      ev.preventDefault();
      await login(form);
    } else if (form.matches("form[data-enrol-verify]")) {
      ev.preventDefault();
      await enrolVerify(form);
    } else if (form.matches("form[data-compose]")) {
      ev.preventDefault();
      await compose(form);
    }
  });

  async function submitApi(form) {
    // Changes that take something away ask first.
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
    const box = form.querySelector("[data-error]");
    const button = form.querySelector('button[type="submit"]');
    if (box) box.hidden = true;
    if (button) button.disabled = true;
    const body = formBody(form);
    // Files go first (each is scanned before anyone can open it), then the form names them.
    const files = form.querySelector('input[type="file"][data-upload-for]');
    if (files && files.files.length) {
      const ids = [];
      for (const file of files.files) {
        const fd = new FormData();
        fd.append("file", file, file.name);
        const up = await api("POST", "/api/v1/attachments?member_id=" + encodeURIComponent(files.dataset.uploadFor), fd);
        if (!up.ok) {
          if (button) button.disabled = false;
          showProblem(box, up);
          return;
        }
        ids.push(up.data.items[0].id);
      }
      body.attachment_ids = ids;
    }
    const res = await api(form.dataset.method || "POST", form.dataset.api, body);
    if (button) button.disabled = false;
    if (!res.ok) {
      showProblem(box, res);
      return;
    }
    if (form.dataset.after === "call") {
      callSaved(form, res.data);
      return;
    }
    if (form.dataset.next) {
      location.href = form.dataset.next;
      return;
    }
    location.reload();
  }

  // ---- sign-in, second factor, enrolment ----
  async function login(form) {
    const box = form.querySelector("[data-error]");
    box.hidden = true;
    const body = {
      username: form.username.value.trim(),
      password: form.password.value,
      cookie: true,
    };
    const totpField = document.getElementById("totp-field");
    if (!totpField.hidden && form.totp.value) body.totp = form.totp.value.trim();
    const res = await api("POST", "/api/v1/sessions", body);
    if (!res.ok) {
      const type = (res.data && res.data.type) || "";
      if (type.endsWith("/mfa-required")) {
        totpField.hidden = false;
        form.totp.focus();
        box.className = "notice";
        box.textContent = "Enter the 6-digit code from your authenticator app.";
        box.hidden = false;
        return;
      }
      showProblem(box, res);
      return;
    }
    csrf = res.data.csrf_token || "";
    if (res.data.mfa_enrolment_required) {
      const start = await api("POST", "/api/v1/me/mfa/totp", {});
      const section = document.getElementById("enrol");
      section.hidden = false;
      form.hidden = true;
      section.querySelector("[data-secret]").textContent = start.ok ? start.data.secret : "";
      section.querySelector("input").focus();
      return;
    }
    // The start page sends each role to its own landing page.
    location.href = "/";
  }

  async function enrolVerify(form) {
    const box = form.querySelector("[data-error]");
    const res = await api("POST", "/api/v1/me/mfa/totp/verify", { code: form.code.value.trim() });
    if (!res.ok) { showProblem(box, res); return; }
    const list = document.querySelector("[data-codes]");
    for (const c of res.data.recovery_codes || []) {
      const li = document.createElement("li");
      li.textContent = c;
      list.appendChild(li);
    }
    form.hidden = true;
    document.querySelector("[data-recovery]").hidden = false;
  }

  // ---- member compose: attachments first, then the message ----
  async function compose(form) {
    const err = form.querySelector("[data-error]");
    const status = form.querySelector("[data-status]");
    const list = form.querySelector("[data-uploads]");
    const button = form.querySelector('button[type="submit"]');
    err.hidden = true;
    status.hidden = false;
    status.textContent = form.dataset.msgSending;
    button.disabled = true;
    const ids = [];
    const files = form.querySelector('input[type="file"]');
    list.textContent = "";
    for (const file of files ? files.files : []) {
      const li = document.createElement("li");
      li.textContent = file.name + " — uploading…";
      list.appendChild(li);
      const fd = new FormData();
      fd.append("file", file, file.name);
      const memberId = form.dataset.memberId;
      const target = "/api/v1/attachments" + (memberId ? "?member_id=" + encodeURIComponent(memberId) : "");
      const up = await api("POST", target, fd);
      if (up.status === 404 || up.status === 405) {
        li.textContent = file.name + " — " + form.dataset.msgUploadsUnavailable;
        li.className = "scan failed";
        continue;
      }
      if (!up.ok) {
        li.textContent = file.name + " — " + ((up.data && up.data.detail) || "upload failed");
        li.className = "scan failed";
        continue;
      }
      const a = (up.data.items && up.data.items[0]) || {};
      ids.push(a.id);
      li.textContent = file.name + " — " + (a.state || "quarantined");
      li.className = "scan " + (a.state || "quarantined");
    }
    const body = { text: form.text.value };
    if (ids.length) body.attachment_ids = ids;
    if (form.dataset.memberId) body.member_id = form.dataset.memberId;
    const res = await api("POST", "/api/v1/messages", body);
    button.disabled = false;
    if (!res.ok) {
      status.hidden = true;
      showProblem(err, res);
      return;
    }
    form.text.value = "";
    if (files) files.value = "";
    status.textContent = form.dataset.msgSent;
    if (res.data.auto_reply) {
      // An emergency: the guidance goes in front of everything, and stays.
      const box = form.parentElement.querySelector("[data-emergency]");
      box.querySelector("[data-emergency-text]").textContent = res.data.auto_reply.text;
      const link = box.querySelector("[data-emergency-link]");
      if (link && res.data.message) link.href = "/portal/threads/" + res.data.message.thread_id + "#t-" + res.data.ticket.id;
      box.hidden = false;
      box.focus();
      refreshAll();
      return;
    }
    const thread = res.data.message && res.data.message.thread_id;
    if (form.dataset.thread) refreshAll();
    else if (thread) location.href = "/portal/threads/" + thread + "#t-" + res.data.ticket.id;
  }

  // ---- buttons that post (acknowledge a page) ----
  document.addEventListener("click", async function (ev) {
    const b = ev.target.closest("button[data-post]");
    if (b) {
      ev.preventDefault();
      b.disabled = true;
      const res = await api("POST", b.dataset.post, {});
      if (res.ok) {
        b.textContent = b.dataset.done || "Done";
        refreshAll();
      } else {
        b.disabled = false;
        alertText((res.data && res.data.detail) || "That did not work.");
      }
      return;
    }
    const out = ev.target.closest("button[data-logout]");
    if (out) {
      await api("DELETE", "/api/v1/sessions/current");
      location.href = "/login";
    }
  });

  function alertText(msg) {
    const live = document.getElementById("banner") || document.body;
    const p = document.createElement("p");
    p.className = "notice error";
    p.setAttribute("role", "alert");
    p.textContent = msg;
    live.prepend(p);
  }

  // Alt+Shift+A acknowledges the first page in the banner.
  document.addEventListener("keydown", function (ev) {
    if (ev.altKey && ev.shiftKey && (ev.key === "A" || ev.key === "a" || ev.code === "KeyA")) {
      const b = document.querySelector("#banner button[data-post]:not([disabled])");
      if (b) { ev.preventDefault(); b.click(); }
    }
  });

  // ---- fragments swapped on events ----
  const pending = new Map();
  async function refresh(el) {
    const url = el.dataset.fragment;
    const resp = await fetch(url, { credentials: "same-origin", headers: { accept: "text/html" } });
    if (resp.redirected && new URL(resp.url).pathname === "/login") { location.href = "/login"; return; }
    if (!resp.ok) return;
    const html = await resp.text();
    el.innerHTML = html;
    decorate(el);
  }
  function schedule(el) {
    clearTimeout(pending.get(el));
    pending.set(el, setTimeout(function () { refresh(el); }, 150));
  }
  function refreshAll() {
    document.querySelectorAll("[data-fragment]").forEach(schedule);
  }

  const live = Array.from(document.querySelectorAll("[data-fragment][data-on]"));
  if (live.length && window.EventSource) {
    const kinds = new Set();
    live.forEach(function (el) { el.dataset.on.split(/\s+/).forEach(function (k) { if (k) kinds.add(k); }); });
    const source = new EventSource("/api/v1/events");
    kinds.forEach(function (kind) {
      source.addEventListener(kind, function (ev) {
        let data = {};
        try { data = JSON.parse(ev.data || "{}"); } catch (e) { /* a ready or lagged note */ }
        live.forEach(function (el) {
          if (!el.dataset.on.split(/\s+/).includes(kind)) return;
          if (el.dataset.ticket && data.ticket_id && data.ticket_id !== el.dataset.ticket) return;
          schedule(el);
        });
      });
    });
    source.addEventListener("lagged", refreshAll);
    // Marks the page as live (tests and the status line wait for it).
    source.addEventListener("ready", function () { document.documentElement.dataset.live = "on"; });
    source.addEventListener("error", function () { document.documentElement.dataset.live = "reconnecting"; });
    // The session ended (logout, revocation, expiry): stop reconnecting and sign in again.
    source.addEventListener("session-ended", function () {
      source.close();
      document.documentElement.dataset.live = "ended";
      window.location.assign("/login");
    });
  }

  // ---- local times and countdowns ----
  function decorate(root) {
    root.querySelectorAll("time[datetime]").forEach(function (t) {
      const d = new Date(t.getAttribute("datetime"));
      if (!isNaN(d)) t.textContent = d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
    });
    tick();
  }
  function span(ms) {
    const s = Math.floor(Math.abs(ms) / 1000);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (h > 0) return h + " h " + String(m).padStart(2, "0") + " min";
    return m + " min " + String(sec).padStart(2, "0") + " s";
  }
  function tick() {
    const now = Date.now();
    document.querySelectorAll("[data-due]").forEach(function (el) {
      const due = Date.parse(el.dataset.due);
      if (isNaN(due)) return;
      const left = due - now;
      el.textContent = left >= 0 ? "due in " + span(left) : "overdue by " + span(left);
      el.classList.toggle("overdue", left < 0);
      el.classList.toggle("soon", left >= 0 && left < 5 * 60 * 1000);
    });
  }
  decorate(document);
  setInterval(tick, 1000);

  // ---- live triage of call notes ----
  document.querySelectorAll("textarea[data-live-triage]").forEach(function (area) {
    const out = document.querySelector(area.dataset.liveTriage);
    const form = area.closest("form");
    let timer = null;
    let seq = 0;
    area.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(async function () {
        const text = area.value;
        if (!text.trim()) { out.textContent = ""; return; }
        const mine = ++seq;
        const res = await api("POST", "/api/v1/triage", { text: text });
        if (mine !== seq || !res.ok) return;
        renderTriage(out, res.data);
        showScript(form, res.data.agent_guidance);
      }, 350);
    });
  });

  function renderTriage(out, j) {
    out.textContent = "";
    out.className = "live " + j.disposition;
    const p = document.createElement("p");
    const badge = document.createElement("span");
    badge.className = "badge " + j.disposition;
    badge.textContent = j.disposition;
    p.appendChild(badge);
    p.appendChild(document.createTextNode(" " + j.explanation));
    out.appendChild(p);
    if (j.evidence && j.evidence.length) {
      const ul = document.createElement("ul");
      j.evidence.forEach(function (e) {
        const li = document.createElement("li");
        const mark = document.createElement("mark");
        mark.className = "evidence";
        mark.textContent = e.text;
        li.appendChild(mark);
        li.appendChild(document.createTextNode(" — " + e.protocol));
        ul.appendChild(li);
      });
      out.appendChild(ul);
    }
  }

  function showScript(form, guidance) {
    const box = form && form.querySelector("[data-script]");
    if (!box) return;
    if (guidance) {
      box.querySelector("[data-script-text]").textContent = guidance;
      box.hidden = false;
    } else {
      box.hidden = true;
    }
  }

  function callSaved(form, data) {
    const box = form.querySelector("[data-result]");
    box.textContent = "";
    const p = document.createElement("p");
    p.textContent = "Call saved as a " + data.ticket.priority + " ticket in " + data.ticket.queue.name + ". ";
    const a = document.createElement("a");
    a.href = "/console/tickets/" + data.ticket.id;
    a.textContent = "Open the ticket";
    p.appendChild(a);
    box.appendChild(p);
    box.hidden = false;
    showScript(form, data.agent_guidance);
    form.querySelector('button[type="submit"]').disabled = true;
  }
})();
