// onshi kiosk: the staff view (loaded with defer, after i18n.js). Needs a log-in: every staff
// API answering 401 brings the log-in form back.
// Authentication: the page itself carries no secret. A log-in answers a per-log-in token, kept in
// sessionStorage (per origin and per tab: another port cannot read it) and in memory (i18n.js
// setToken); every fetch sends it as X-Onshi-Token, EventSources and the CSV link as ?token=.
// Cookies never authenticate alone (on 127.0.0.1 they are shared across ports).
"use strict";
const TOKEN_KEY = "onshi-staff-token";
let ENTRIES = [];
const BATCHES = new Map();
let VISUAL = null;
let STAFF = null;        // the logged-in staff id, null when logged out
let GEN = 0;             // bumped on every log-in / log-out: answers of an older one are dropped
let events = null;       // EventSource /api/staff/events
let kioskEvents = null;  // EventSource /api/events (the kiosk's state: visual check)
let reopenTimer = null;

const RATIO = { "010": "1割", "020": "2割", "030": "3割" };

const $ = (id) => document.getElementById(id);

// --- the per-log-in token ---

function storedToken() {
  try { return sessionStorage.getItem(TOKEN_KEY); } catch (_) { return null; }
}

function keepToken(tok) {
  setToken(tok);
  try { sessionStorage.setItem(TOKEN_KEY, tok); } catch (_) { /* memory only */ }
}

function dropToken() {
  setToken(null);
  try { sessionStorage.removeItem(TOKEN_KEY); } catch (_) { /* nothing kept */ }
}

// For URLs that cannot carry a header (EventSource, download link).
function withToken(url) {
  return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(onshiToken() || "");
}

function fmtTime(ms) {
  return new Date(ms).toLocaleTimeString(LANG === "ja" ? "ja-JP" : "en-GB", { timeZone: "Asia/Tokyo" });
}

function matches(e, q) {
  if (!q) return true;
  const r = e.result || {};
  const hay = [e.method, e.outcome, e.result_code, e.message, r.confirmation_id, r.validity_label,
    r.treatment, r.requery_until,
    ...(r.qualifications || []).flatMap((x) => [x.name, x.kana_name, x.insurer_number, x.insurer_name,
      x.symbol, x.number, x.birth_date])].join(" ").toLowerCase();
  return hay.includes(q.toLowerCase());
}

// The holder's 資格確認書 or 資格情報のお知らせ: its kind, its validity period and whether it is
// valid on the answer's day (the eligibility beside it is the qualification's).
function documentNote(d) {
  if (!d) return null;
  const period = d.valid_from || d.valid_until ? d.valid_from + "–" + d.valid_until : t("doc_no_period");
  return el("div", { class: "document" + (d.valid_on_as_of_date ? "" : " lapsed"), "data-kind": d.kind,
    "data-valid": String(d.valid_on_as_of_date) },
  t("doc_" + d.kind) + " " + period + " " + (d.valid_on_as_of_date ? t("doc_valid") : t("doc_lapsed")));
}

function renderEntries() {
  const q = $("search").value.trim();
  const names = t("consent_names").split(",");
  const rows = ENTRIES.filter((e) => matches(e, q)).map((e) => {
    const r = e.result || {};
    const qa = (r.qualifications || [])[0] || {};
    const c = r.consents || {};
    const given = ["medication", "checkup", "clinical", "surgery"].filter((k) => c[k]);
    const method = e.method === "numbers" ? t("method_numbers")
      : e.method === "reader" ? t("method_reader")
      : t("method_" + e.method) + (e.staff_id ? " (" + e.staff_id + ")" : "");
    const outcome = t("outcome_" + e.outcome) + (e.result_code ? " " + e.result_code.replace("RESULT_CODE_", "") : "")
      + (e.message ? " — " + e.message : "") + (e.registered_now ? " ★" : "");
    const actions = el("td", {},
      c.medication ? el("button", { id: "med-" + e.seq, onclick: () => clinical(e.seq, "medications") }, t("medications")) : null,
      c.checkup ? el("button", { id: "chk-" + e.seq, onclick: () => clinical(e.seq, "checkups") }, t("checkups")) : null);
    return el("tr", { id: "entry-" + e.seq, class: e.outcome, "data-seq": e.seq },
      el("td", {}, String(e.seq)), el("td", {}, fmtTime(e.at_ms)), el("td", { class: "method" }, method,
        // The query's treatment (not 外来) and a 居宅同意取得型 first visit's re-query period.
        r.treatment && r.treatment !== "outpatient" ? el("div", { class: "treatment", "data-treatment": r.treatment },
          t("treatment_" + r.treatment.replace("-", "_"))) : null,
        r.requery_until ? el("div", { class: "requery-until", "data-until": r.requery_until },
          t("requery_until", { until: r.requery_until })) : null),
      el("td", { class: "outcome" }, outcome,
        // A certificate warning on a confirmation carried out (renewal, or grace: no data).
        r.warning ? el("div", { class: "warning", "data-warning": r.warning }, r.warning_message) : null),
      el("td", { class: "validity" }, r.validity_label || "", documentNote(r.insurance_document),
        // 医療扶助: 有効（未登録） (no 医療券/調剤券 of the month registered), or the tickets.
        r.validity === 6 ? el("div", { class: "aid-unregistered" }, "医療券 未登録") : null,
        ...(r.medical_tickets || []).map((k, i) => el("div", {
          class: "ticket", id: "ticket-" + e.seq + "-" + i, "data-here": k.designated_here ? "1" : "0" },
          k.kind + " " + k.treatment_month + " 交付番号 " + k.issue_number + " 指定 "
            + k.designated_institution_name + (k.designated_here ? " (当院)" : " (他院)")
            + " 本人支払額 " + k.self_pay_yen + "円"))),
      el("td", { class: "name" }, qa.name ? qa.name + " (" + qa.kana_name + ")" : ""),
      el("td", {}, qa.birth_date || ""),
      el("td", {}, qa.insurer_number ? qa.insurer_number + " " + qa.insurer_name : ""),
      el("td", {}, qa.number ? [qa.symbol, qa.number, qa.branch].filter((x) => x).join(" / ") : ""),
      el("td", { class: "copay" }, qa.copay_ratio ? (RATIO[qa.copay_ratio] || qa.copay_ratio) : ""),
      el("td", { class: "bracket" }, qa.high_cost_limit_bracket || ""),
      el("td", { class: "consents" }, r.consents ? (given.map((k) => names[["medication", "checkup", "clinical", "surgery"].indexOf(k)]).join(", ") || t("none")) : ""),
      actions);
  });
  $("confirmations").replaceChildren(...rows);
}

// True (and the log-in form is back) when the answer says the log-in is gone.
function loggedOut(r) {
  if (r.status !== 401) return false;
  showLogin("login_expired");
  return true;
}

async function clinical(seq, kind) {
  const gen = GEN;
  const r = await postJson("/api/staff/" + kind, { seq });
  if (gen !== GEN || loggedOut(r)) return;
  const box = $("clinical");
  if (!r.ok) {
    box.replaceChildren(el("p", { id: "clinical-error" }, (r.data && (r.data.result_code + " " + r.data.message)) || "error"));
    return;
  }
  const rows = r.data[kind] || [];
  const head = kind === "medications"
    ? ["dispensed_on", "drug_name", "usage", "daily_quantity", "days", "institution_name"]
    : ["examined_on", "height_cm_x10", "weight_kg_x10", "bmi_x10", "systolic_mmhg", "diastolic_mmhg", "hba1c_x10", "judgement"];
  box.replaceChildren(
    el("h2", {}, t(kind) + " (#" + seq + ")"),
    rows.length === 0 ? el("p", {}, t("clinical_none")) :
      el("table", { id: "clinical-" + kind },
        el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, t("h_" + h))))),
        el("tbody", {}, ...rows.map((m) => el("tr", {}, ...head.map((h) =>
          el("td", {}, h.endsWith("_x10") ? (m[h] / 10).toFixed(1) : String(m[h]))))))));
}

// The staff id recorded is the logged-in one's: the server takes it from the log-in.
async function setVisual(on) {
  const gen = GEN;
  const r = await postJson("/api/staff/visual-check", { on });
  if (gen !== GEN || loggedOut(r)) return;
  if (r.ok && r.data) { VISUAL = r.data.visual_check_staff; renderVisual(); }
  else $("visual-state").textContent = (r.data && r.data.message) || "error";
}

function renderVisual() {
  $("visual-state").textContent = VISUAL ? t("visual_state_on", { id: VISUAL }) : t("visual_state_off");
  $("visual-state").dataset.on = VISUAL ? "1" : "0";
}

async function byNumbers() {
  const gen = GEN;
  const v = (id) => $(id).value.trim();
  const r = await postJson("/api/staff/numbers", {
    insurer_number: v("n-insurer"), symbol: v("n-symbol"), number: v("n-number"),
    branch: v("n-branch"), birth_date: v("n-birth"),
  });
  if (gen !== GEN || loggedOut(r)) return;
  $("n-result").textContent = r.data
    ? "#" + r.data.seq + " " + t("outcome_" + r.data.outcome) + " " + (r.data.result_code || "") + " " + (r.data.message || "")
    : "error";
}

async function outageVisit() {
  const gen = GEN;
  const v = (id) => $(id).value.trim();
  const r = await postJson("/api/staff/outage/visits", {
    insurer_number: v("n-insurer"), symbol: v("n-symbol"), number: v("n-number"),
    branch: v("n-branch"), birth_date: v("n-birth"),
  });
  if (gen !== GEN || loggedOut(r)) return;
  $("n-result").textContent = r.data
    ? (r.data.recorded ? t("outage_recorded") + " " + t("outage_waiting", { n: r.data.waiting }) : r.data.error || "error")
    : "error";
  refreshOutage();
}

let OUTAGE = null;

async function refreshOutage() {
  const gen = GEN;
  const r = await getJson("/api/staff/outage");
  if (gen !== GEN || loggedOut(r)) return;
  if (r.ok && r.data) { OUTAGE = r.data; renderOutage(); }
}

function renderOutage() {
  const o = OUTAGE;
  $("outage-state").textContent = o ? t(o.outage ? "outage_state_on" : "outage_state_off") : "";
  $("outage-state").dataset.outage = o && o.outage ? "1" : "0";
  $("outage-count").textContent = o
    ? t("outage_waiting_staff", { n: o.waiting.length, max: o.capacity }) + " / " + t("outage_caught_up", { n: o.caught_up })
    : "";
  const when = (unix) => new Date(unix * 1000).toLocaleString();
  const decl = (d) => [d.insurer_number, d.symbol, d.number, d.branch, d.birth_date].join(" ");
  $("outage-waiting").replaceChildren(...(o ? o.waiting : []).map((v) =>
    el("li", { class: "waiting", "data-id": v.id }, when(v.received_at_unix) + " " + decl(v.declaration) + " (" + v.entered_by + ")")));
  $("outage-disagreements").replaceChildren(...(o ? o.disagreements : []).map((d) =>
    el("li", { class: "disagreement", "data-id": d.visit.id },
      when(d.visit.received_at_unix) + " " + decl(d.visit.declaration) + ": " + d.reason + " " + d.result_code.replace("RESULT_CODE_", "") + " ",
      el("button", { class: "acknowledge", "data-id": d.visit.id, onclick: () => acknowledgeDisagreement(d.visit.id) }, t("outage_acknowledge")))));
}

// Billing has corrected the claim: the disagreement leaves the list (and the kiosk's disk).
async function acknowledgeDisagreement(id) {
  const gen = GEN;
  const r = await postJson("/api/staff/outage/acknowledge", { id });
  if (gen !== GEN || loggedOut(r)) return;
  refreshOutage();
}

async function submitBatch() {
  const gen = GEN;
  const file = $("batch-file").files[0];
  const err = $("batch-error");
  err.textContent = "";
  if (!file) return;
  const text = await file.text();
  const r = await postJson("/api/staff/batch", { csv: text });
  if (gen !== GEN || loggedOut(r)) return;
  const data = r.data;
  if (!r.ok || !data) { err.textContent = (data && (data.result_code + " " + data.message)) || "error"; return; }
  // Its progress may have been pushed before this answer arrived: never go back from done.
  const seen = BATCHES.get(data.reception_number);
  if (!seen || (seen.status !== "done" && seen.completed <= data.completed)) BATCHES.set(data.reception_number, data);
  renderBatches();
}

function renderBatches() {
  const items = [...BATCHES.values()].sort((a, b) => b.reception_number.localeCompare(a.reception_number));
  $("batches").replaceChildren(...items.map((b) =>
    el("div", { class: "row batch", id: "batch-" + b.reception_number, "data-status": b.status },
      el("span", {}, b.reception_number),
      el("progress", { max: String(Math.max(b.total, 1)), value: String(b.completed) }),
      el("span", { class: "count" }, b.completed + " / " + b.total),
      el("span", { class: "status" }, t("batch_" + b.status) + (b.message ? " " + b.message : "")),
      b.status === "done" ? el("a", { id: "download-" + b.reception_number,
        href: withToken("/api/staff/batch/" + b.reception_number + "/results.csv") }, t("batch_download")) : null)));
}

function renderAll() { renderEntries(); renderVisual(); renderBatches(); renderOutage(); }

async function reload() {
  const gen = GEN;
  const [c, s, b] = await Promise.all([
    getJson("/api/staff/confirmations"),
    getJson("/api/state"),
    getJson("/api/staff/batch"),
  ]);
  if (gen !== GEN) return;
  if (loggedOut(c) || loggedOut(s) || loggedOut(b)) return;
  if (!c.ok || !s.ok || !b.ok || !c.data || !s.data || !b.data) return;
  // Keep what was pushed while the list was on its way.
  const fetched = new Set(c.data.confirmations.map((x) => x.seq));
  ENTRIES = [...ENTRIES.filter((x) => !fetched.has(x.seq)), ...c.data.confirmations].sort((a, b) => b.seq - a.seq);
  VISUAL = s.data.visual_check_staff;
  for (const x of b.data.batches) BATCHES.set(x.reception_number, x);
  renderAll();
  refreshOutage();
  document.body.dataset.ready = "1";
}

// --- server-sent events (authenticated by ?token=, as an EventSource cannot send headers) ---

function closeEvents() {
  if (reopenTimer !== null) { clearTimeout(reopenTimer); reopenTimer = null; }
  if (events) { events.close(); events = null; }
  if (kioskEvents) { kioskEvents.close(); kioskEvents = null; }
}

// An EventSource that gave up (e.g. answered 401) stays closed: ask whether the log-in is still
// there; if so, open the streams again a little later, otherwise show the log-in form.
async function eventsFailed(source) {
  if (source !== events && source !== kioskEvents) return; // an older stream
  if (source.readyState !== EventSource.CLOSED || reopenTimer !== null) return;
  const gen = GEN;
  const r = await getJson("/api/me");
  if (gen !== GEN || loggedOut(r)) return;
  closeEvents();
  reopenTimer = setTimeout(() => { reopenTimer = null; if (gen === GEN) openEvents(); }, 2000);
}

// The server's last event on a stream when the log-in ends: as a 401.
function eventsLoggedOut(source) {
  if (source !== events && source !== kioskEvents) return; // an older stream
  showLogin("login_expired");
}

function openEvents() {
  closeEvents();
  events = new EventSource(withToken("/api/staff/events"));
  events.addEventListener("open", reload);
  events.addEventListener("lagged", reload);
  events.addEventListener("staff", (e) => {
    const ev = JSON.parse(e.data);
    if (ev.kind === "confirmation") {
      if (!ENTRIES.some((x) => x.seq === ev.seq)) ENTRIES.unshift(ev);
      renderEntries();
      refreshOutage();
    } else if (ev.kind === "batch") {
      const old = BATCHES.get(ev.reception_number);
      if (!old || old.status !== "done") BATCHES.set(ev.reception_number, ev);
      renderBatches();
    }
  });
  events.addEventListener("logged_out", (e) => eventsLoggedOut(e.target));
  events.addEventListener("error", (e) => eventsFailed(e.target));
  kioskEvents = new EventSource(withToken("/api/events"));
  kioskEvents.addEventListener("state", (e) => {
    const s = JSON.parse(e.data);
    VISUAL = s.visual_check_staff;
    renderVisual();
    if (!OUTAGE || OUTAGE.outage !== s.outage || s.screen === "outage_recorded") refreshOutage();
  });
  kioskEvents.addEventListener("logged_out", (e) => eventsLoggedOut(e.target));
  kioskEvents.addEventListener("error", (e) => eventsFailed(e.target));
}

// --- log-in ---

// key: a text key (translated, follows the language toggle), or null; message: a raw text instead.
function setText(id, key, message) {
  const p = $(id);
  if (key) { p.dataset.t = key; p.dataset.error = key; p.textContent = t(key); }
  else { delete p.dataset.t; delete p.dataset.error; p.textContent = message || ""; }
}

function clearData() {
  ENTRIES = [];
  BATCHES.clear();
  VISUAL = null;
  OUTAGE = null;
  for (const id of ["search", "n-insurer", "n-symbol", "n-number", "n-branch", "n-birth", "batch-file"]) $(id).value = "";
  for (const id of ["n-result", "batch-error"]) $(id).textContent = "";
  $("clinical").replaceChildren();
  renderAll();
}

// The log-in is gone (log-out, 401, logged_out event, or none at load): forget its token.
function showLogin(noticeKey) {
  GEN++;
  STAFF = null;
  closeEvents();
  dropToken();
  clearData();
  $("login-password").value = "";
  setText("login-error", null);
  setText("login-notice", noticeKey || null);
  $("staff-main").hidden = true;
  $("whoami").textContent = "";
  $("whoami-box").hidden = true;
  $("logout").hidden = true;
  $("login-submit").disabled = false;
  $("login").hidden = false;
  document.body.dataset.loggedIn = "0";
  delete document.body.dataset.ready;
  $($("login-staff-id").value ? "login-password" : "login-staff-id").focus();
}

function showMain(staffId) {
  GEN++;
  STAFF = staffId;
  $("login-password").value = "";
  setText("login-error", null);
  setText("login-notice", null);
  $("login").hidden = true;
  $("whoami").textContent = staffId;
  $("whoami-box").hidden = false;
  $("logout").hidden = false;
  $("staff-main").hidden = false;
  document.body.dataset.loggedIn = "1";
  renderAll();
  openEvents(); // "open" reloads the data, as before
}

async function login(e) {
  e.preventDefault();
  const staffId = $("login-staff-id").value.trim();
  const password = $("login-password").value;
  const submit = $("login-submit");
  if (submit.disabled) return;
  submit.disabled = true;
  setText("login-error", null);
  const gen = GEN;
  dropToken(); // the log-in itself carries no token header
  const r = await postJson("/api/login", { staff_id: staffId, password });
  if (gen !== GEN) return;
  submit.disabled = false;
  if (r.ok && r.data && r.data.staff_id && typeof r.data.token === "string" && r.data.token) {
    keepToken(r.data.token);
    showMain(r.data.staff_id);
    return;
  }
  $("login-password").value = "";
  $("login-password").focus();
  // Never tell whether the id or the password was wrong.
  if (r.status === 401) setText("login-error", "login_failed");
  else if (r.status === 429) setText("login-error", "login_throttled");
  else if (r.status === 403) setText("login-error", "login_forbidden");
  else setText("login-error", "login_error");
}

async function logout() {
  const gen = GEN;
  // Close the streams first: their "logged_out" event is the answer to this, not an expiry.
  closeEvents();
  await postJson("/api/logout", {});
  if (gen !== GEN) return;
  showLogin(null); // clears the token (sessionStorage and memory) and closes the streams
}

// At load: a token kept by this tab is checked with /api/me; without one, the form at once.
async function whoAmI() {
  const tok = storedToken();
  if (!tok) { showLogin(null); return; }
  setToken(tok);
  const gen = GEN;
  const r = await getJson("/api/me");
  if (gen !== GEN) return;
  if (r.ok && r.data && r.data.staff_id) { showMain(r.data.staff_id); return; }
  showLogin(null);
  if (r.status === 403) setText("login-error", "login_forbidden");
  else if (r.status !== 401) setText("login-error", "login_error");
}

$("lang-toggle").addEventListener("click", () => toggleLang(renderAll));
$("visual-on").addEventListener("click", () => setVisual(true));
$("visual-off").addEventListener("click", () => setVisual(false));
$("search").addEventListener("input", renderEntries);
$("n-submit").addEventListener("click", byNumbers);
$("n-outage").addEventListener("click", outageVisit);
$("batch-submit").addEventListener("click", submitBatch);
$("login-form").addEventListener("submit", login);
$("logout").addEventListener("click", logout);

applyTexts();
renderAll();
whoAmI();
