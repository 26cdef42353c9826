// The annotator's workbench: keyboard answers, draft autosave, time on task, live project events.
// Served as a static file (no build step). Keys are documented on the page; see SHORTCUTS in views_workbench.py.
(function () {
  "use strict";

  const AUTOSAVE_MS = 3000;
  const POLL_MS = 30000;
  const SKIP_FIELDS = new Set(["csrfmiddlewaretoken", "submission_id", "draft_version", "draft_tab", "time_spent_ms", "revealed"]);
  const RADIO_KEYS = {
    q: ["helpfulness", "left"], w: ["helpfulness", "tie"], e: ["helpfulness", "right"],
    a: ["harmlessness", "left"], s: ["harmlessness", "tie"], d: ["harmlessness", "right"],
    z: ["left_safe", "safe"], x: ["left_safe", "unsafe"],
    n: ["right_safe", "safe"], m: ["right_safe", "unsafe"],
    u: ["left_severity", "minor"], i: ["left_severity", "moderate"], o: ["left_severity", "severe"],
    j: ["right_severity", "minor"], k: ["right_severity", "moderate"], l: ["right_severity", "severe"],
  };

  let state = null; // per-comparison: {form, draftUrl, version, dirty, stale, visibleSince, elapsed, timer, key}

  // --- This tab's identity and change counter ------------------------------------------------------------
  // Both live in sessionStorage, so they survive a reload of this tab and differ between tabs. Each draft save
  // carries them: the server takes this tab's newest save whatever order the saves land in (a save sent as
  // the page unloads may land after the reloaded page's own), and keeps the version check between tabs.
  // The latest answers are also kept here, so a reload shows them even before that last save has landed.
  function session(fn, fallback) { try { return fn(window.sessionStorage); } catch (_) { return fallback; } }
  const TAB = session((s) => {
    let id = s.getItem("arbiter-tab");
    if (!id) { id = Math.random().toString(36).slice(2) + Date.now().toString(36); s.setItem("arbiter-tab", id); }
    return id;
  }, "");
  function nextSeq() {
    return session((s) => { const n = Number(s.getItem("arbiter-seq") || 0) + 1; s.setItem("arbiter-seq", String(n)); return n; }, 0);
  }
  function remember() {
    if (!state || !state.key) return;
    state.seq = nextSeq();
    const copy = { data: formData(state.form), seq: state.seq };
    session((s) => s.setItem(state.key, JSON.stringify(copy)), null);
  }
  function recalled(key) { return session((s) => JSON.parse(s.getItem(key) || "null"), null); }
  function forgetOthers(key) {
    session((s) => {
      for (let i = s.length - 1; i >= 0; i--) {
        const k = s.key(i);
        if (k && k.startsWith("arbiter-draft-") && k !== key) s.removeItem(k);
      }
    }, null);
  }

  function csrfToken() {
    try { return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || ""; }
    catch (_) { return ""; }
  }

  function formData(form) {
    const out = {};
    for (const [name, value] of new FormData(form).entries()) {
      if (SKIP_FIELDS.has(name)) continue;
      if (name.endsWith("_harm_categories") || name in out) {
        out[name] = [].concat(out[name] === undefined ? [] : out[name], value);
      } else {
        out[name] = value;
      }
    }
    for (const el of form.querySelectorAll("input[type=checkbox][name$=_harm_categories]")) {
      if (!(el.name in out)) out[el.name] = [];
    }
    return out;
  }

  function applyData(form, data) {
    for (const [name, value] of Object.entries(data || {})) {
      const els = form.querySelectorAll(`[name="${CSS.escape(name)}"]`);
      const values = Array.isArray(value) ? value.map(String) : [String(value)];
      for (const el of els) {
        if (el.type === "radio" || el.type === "checkbox") el.checked = values.includes(el.value);
        else if (el.tagName === "TEXTAREA" || el.type === "text" || el.type === "hidden") el.value = values[0] || "";
      }
    }
  }

  function elapsed() {
    if (!state) return 0;
    const running = state.visibleSince === null ? 0 : Date.now() - state.visibleSince;
    return Math.round(state.elapsed + running);
  }

  function setDraftState(text, bad) {
    const el = document.getElementById("draft-state");
    if (el) { el.textContent = text; el.classList.toggle("error", !!bad); }
  }

  function saveDraft(keepalive) {
    if (!state || !state.draftUrl || !state.dirty || state.stale || state.saving) return;
    const data = formData(state.form);
    data._elapsed_ms = elapsed();
    state.dirty = false;
    state.saving = !keepalive;
    fetch(state.draftUrl, {
      method: "POST", keepalive: !!keepalive, credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify({ data: data, version: state.version, tab: TAB, seq: state.seq }),
    }).then(async (resp) => {
      if (!state) return;
      state.saving = false;
      if (resp.status === 409) {
        state.stale = true;
        setDraftState("A newer draft of this comparison was saved in another tab. Reload to continue from it.", true);
        return;
      }
      if (!resp.ok) { state.dirty = true; setDraftState("Draft not saved (will retry).", true); return; }
      const body = await resp.json();
      state.version = body.version;
      const hidden = state.form.querySelector("input[name=draft_version]");
      if (hidden) hidden.value = String(body.version);
      setDraftState("Draft saved");
    }).catch(() => { if (state) { state.saving = false; state.dirty = true; setDraftState("Offline: draft kept in this tab.", true); } });
  }

  function initComparison() {
    if (state && state.timer) clearInterval(state.timer);
    state = null;
    const section = document.getElementById("comparison");
    const form = document.getElementById("judgment-form");
    if (!section || !form) return;
    const dataEl = document.getElementById("draft-data");
    let draft = dataEl ? JSON.parse(dataEl.textContent || "{}") : {};
    const key = section.dataset.draftUrl ? "arbiter-draft-" + section.dataset.assignment : null;
    forgetOthers(key);
    // This tab's own answers are newer than the server's copy when the server's came from this tab with a
    // lower change count, or when the server has none yet.
    const local = key ? recalled(key) : null;
    const serverSeq = draft._tab === TAB ? Number(draft._seq || 0) : null;
    const fromServer = draft && Object.keys(draft).length > 0;
    const useLocal = !!(local && local.data && (!fromServer || (serverSeq !== null && serverSeq < local.seq)));
    if (useLocal) draft = Object.assign({}, local.data, { _elapsed_ms: draft._elapsed_ms || local.data._elapsed_ms });
    applyData(form, draft);
    const tabField = form.querySelector("input[name=draft_tab]");
    if (tabField) tabField.value = TAB;
    state = {
      form: form, key: key,
      draftUrl: section.dataset.draftUrl || null,
      version: parseInt(section.dataset.draftVersion || "0", 10),
      seq: useLocal ? local.seq : Number(serverSeq || 0),
      dirty: useLocal, stale: false, saving: false,
      visibleSince: document.visibilityState === "visible" ? Date.now() : null,
      elapsed: Number(draft._elapsed_ms || 0),
    };
    for (const el of form.querySelectorAll("input[type=radio][name$=_safe]")) syncSafety(el.name.slice(0, -5));
    // A ranking's cards (static/js/ranking.js), in the order of the draft's tiers.
    if (form.dataset.kind === "ranking" && window.arbiterRanking) window.arbiterRanking.init(form);
    form.addEventListener("input", () => { if (state) { state.dirty = true; remember(); } });
    form.addEventListener("change", (event) => {
      const m = event.target && event.target.name && event.target.name.match(/^(left|right|r\d+)_safe$/);
      if (m) syncSafety(m[1]);
      if (state) { state.dirty = true; remember(); }
    });
    state.timer = setInterval(() => saveDraft(false), AUTOSAVE_MS);
    const reveal = document.getElementById("reveal");
    if (reveal) reveal.addEventListener("click", revealResponses);
    const skipOpen = document.getElementById("skip-open");
    if (skipOpen) skipOpen.addEventListener("click", openSkip);
    const closeSkip = document.querySelector("[data-close-skip]");
    if (closeSkip) closeSkip.addEventListener("click", () => document.getElementById("skip-dialog").close());
    if (document.activeElement && document.activeElement !== document.body) document.activeElement.blur();
  }

  // A safe response has no harm categories and no severity: choosing "safe" clears the hidden details, so
  // the form never sends answers the annotator cannot see (and unsafe -> safe always submits).
  function syncSafety(side) {
    if (!state) return;
    const safe = state.form.querySelector(`input[name="${side}_safe"][value="safe"]`);
    if (!safe || !safe.checked) return;
    for (const el of state.form.querySelectorAll(`input[name="${side}_harm_categories"], input[name="${side}_severity"]`)) {
      el.checked = false;
    }
  }

  function revealResponses() {
    for (const el of document.querySelectorAll(".responses.blurred, .ranking.blurred")) el.classList.remove("blurred");
    const warn = document.getElementById("content-warning");
    if (warn) warn.classList.add("revealed");
    const flag = document.querySelector("#judgment-form input[name=revealed]");
    if (flag) flag.value = "1";
  }

  function openSkip() {
    const dialog = document.getElementById("skip-dialog");
    if (!dialog) return;
    dialog.showModal();
    document.getElementById("skip-reason").focus();
  }

  function toggleGuidelines(force) {
    const panel = document.getElementById("guidelines");
    if (!panel) return;
    const show = force === undefined ? panel.hidden : force;
    panel.hidden = !show;
    const btn = document.getElementById("guidelines-toggle");
    if (btn) btn.setAttribute("aria-expanded", String(show));
  }

  function check(name, value) {
    if (!state) return;
    const el = state.form.querySelector(`input[name="${name}"][value="${value}"]`);
    if (!el) return;
    el.checked = true;
    el.dispatchEvent(new Event("change", { bubbles: true }));
  }

  function focusCategories(side) {
    if (!state) return;
    const unsafe = state.form.querySelector(`input[name="${side}_safe"][value="unsafe"]`);
    if (unsafe && !unsafe.checked) check(`${side}_safe`, "unsafe");
    const first = state.form.querySelector(`input[name="${side}_harm_categories"]`);
    if (first) first.focus();
  }

  function submitForm() {
    if (!state) return;
    saveDraftNowCancelled();
    // htmx wires a swapped-in form only when the swap settles (~20 ms on): a fast key must not submit it natively.
    if (window.htmx) window.htmx.process(state.form);
    state.form.requestSubmit();
  }

  function saveDraftNowCancelled() { if (state) state.dirty = false; }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form && form.id === "judgment-form") {
      const hidden = form.querySelector("input[name=time_spent_ms]");
      if (hidden) hidden.value = String(elapsed());
    }
  }, true);

  document.addEventListener("keydown", (event) => {
    const t = event.target;
    const typing = t && (t.tagName === "TEXTAREA" || t.tagName === "SELECT" ||
      (t.tagName === "INPUT" && !["radio", "checkbox", "button", "submit"].includes(t.type)));
    const dialog = document.getElementById("skip-dialog");
    if (dialog && dialog.open) return; // the dialog's own form: Enter submits, Esc closes
    if (event.key === "Escape") {
      if (t && t !== document.body) t.blur();
      toggleGuidelines(false);
      return;
    }
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); submitForm(); return; }
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "Enter") {
      if (t && (t.tagName === "BUTTON" || t.tagName === "A")) return;
      event.preventDefault(); submitForm(); return;
    }
    if (event.key === "?") { event.preventDefault(); toggleGuidelines(); return; }
    if (event.key === "S" && event.shiftKey) { event.preventDefault(); openSkip(); return; }
    if (event.shiftKey) return;
    if (event.key === "r") { revealResponses(); return; }
    if (event.key === "/") {
      event.preventDefault();
      const box = state && state.form.querySelector("textarea[name=justification]");
      if (box) box.focus();
      return;
    }
    // A ranking's own keys (static/js/ranking.js); none of the pair's below apply to it.
    if (state && state.form.dataset.kind === "ranking") {
      if (window.arbiterRanking) window.arbiterRanking.key(event);
      return;
    }
    if (/^[1-7]$/.test(event.key)) { event.preventDefault(); check("preference", String(Number(event.key) - 4)); return; }
    if (event.key === "f") { event.preventDefault(); focusCategories("left"); return; }
    if (event.key === "g") { event.preventDefault(); focusCategories("right"); return; }
    const radio = RADIO_KEYS[event.key];
    if (radio) { event.preventDefault(); check(radio[0], radio[1]); }
  });

  document.addEventListener("visibilitychange", () => {
    if (!state) return;
    if (document.visibilityState === "hidden") {
      if (state.visibleSince !== null) { state.elapsed += Date.now() - state.visibleSince; state.visibleSince = null; }
      saveDraft(true); // only when answers changed since the last save: a reload must not race a newer page
    } else if (state.visibleSince === null) {
      state.visibleSince = Date.now();
    }
  });
  window.addEventListener("pagehide", () => { if (state && state.dirty) saveDraft(true); });

  document.body.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail && event.detail.target && event.detail.target.id === "workbench") {
      initComparison();
      // A refused submit: bring its first error into view; a new comparison starts at the top.
      const error = document.querySelector("#comparison .field-error, #comparison .rubric-item .error");
      if (error) error.scrollIntoView({ block: "center" });
      else window.scrollTo(0, 0);
    }
  });

  // --- Live project events: websocket first, polling the status endpoint when it is down. --------------
  const root = document.getElementById("wb-root");
  let lastStatus = null;

  function banner(text) {
    const el = document.getElementById("live-banner");
    if (!el) return;
    el.textContent = text;
    el.hidden = !text;
  }

  async function refreshGuidelines() {
    if (!root || !root.dataset.guidelinesUrl) return;
    const resp = await fetch(root.dataset.guidelinesUrl, { credentials: "same-origin" });
    if (resp.ok) document.getElementById("guidelines-body").innerHTML = await resp.text(); // server-rendered, safe Markdown
  }

  async function refreshStatus(kind) {
    if (!root || !root.dataset.statusUrl) return;
    let status;
    try {
      const resp = await fetch(root.dataset.statusUrl, { credentials: "same-origin" });
      if (!resp.ok) return;
      status = await resp.json();
    } catch (_) { return; }
    const before = lastStatus;
    lastStatus = status;
    if (before && (kind === "guidelines" || before.guidelines_version !== status.guidelines_version)) {
      await refreshGuidelines();
      banner("The guidelines were updated. Press ? to read them.");
    }
    if (kind === "guidelines" && !before) { await refreshGuidelines(); banner("The guidelines were updated. Press ? to read them."); }
    if (status.paused && (!before || !before.paused || kind === "paused")) {
      banner("Labelling was paused by a researcher. You can finish this comparison; no new ones will be given.");
    } else if (!status.paused && before && before.paused) {
      banner("Labelling has resumed.");
    }
  }

  function connectLive() {
    if (!root || !root.dataset.wsPath || !("WebSocket" in window)) { startPolling(); return; }
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    let socket;
    try { socket = new WebSocket(proto + "//" + location.host + root.dataset.wsPath); }
    catch (_) { startPolling(); return; }
    socket.addEventListener("message", (msg) => {
      try { refreshStatus(JSON.parse(msg.data).kind); } catch (_) { /* ignore malformed */ }
    });
    socket.addEventListener("open", () => { root.dataset.live = "socket"; });
    socket.addEventListener("close", () => { root.dataset.live = "polling"; startPolling(); });
  }

  let polling = null;
  function startPolling() {
    if (polling) return;
    polling = setInterval(() => refreshStatus(null), POLL_MS);
  }

  const toggle = document.getElementById("guidelines-toggle");
  if (toggle) toggle.addEventListener("click", () => toggleGuidelines());
  const closeG = document.querySelector("[data-close-guidelines]");
  if (closeG) closeG.addEventListener("click", () => toggleGuidelines(false));

  initComparison();
  if (root && root.dataset.statusUrl) { refreshStatus(null); connectLive(); }
})();
