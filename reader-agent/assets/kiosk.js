// onshi kiosk: the patient's screens (loaded with defer, after i18n.js).
"use strict";
let STATE = null;
let PIN = "";

function act(path, body) {
  return postJson(path, Object.assign({ session: STATE ? STATE.session : null }, body)).then(showAnswer);
}

// An action's answer: the new state, or a refusal with the state it left.
function showAnswer(r) {
  if (r.data && r.data.screen) show(r.data);
  else if (r.data && r.data.state) show(r.data.state);
}

function show(state) {
  // Session ids are opaque strings (null before the first card).
  const session = state.session === undefined ? null : state.session;
  if (!STATE || session !== STATE.session || state.screen !== STATE.screen) PIN = "";
  STATE = Object.assign({}, state, { session });
  render();
}

function noticeBox() {
  return STATE.notice ? el("div", { class: "notice", id: "notice", "data-notice": STATE.notice },
                           t("notice_" + STATE.notice)) : null;
}

function cancelRow() {
  return el("div", { class: "cancel-row" },
            el("button", { id: "cancel", onclick: () => act("/api/cancel") }, t("cancel")));
}

function bigButton(id, label, onclick, opts) {
  return el("button", Object.assign({ id, class: "big" + ((opts && opts.secondary) ? " secondary" : ""),
            onclick, disabled: opts && opts.disabled }), label);
}

const SCREENS = {
  loading: () => [el("div", { class: "spinner" })],
  insert_card: (s) => [noticeBox(), el("h1", {}, t("insert_card")), el("p", { class: "sub" }, t("insert_card_hint")),
    // The smartphone マイナ保険証: chosen here, then held to the general-purpose reader.
    s.phone ? el("div", { class: "buttons" }, bigButton("phone-start", t("phone_start"), startPhone)) : null,
    s.phone ? el("p", { class: "sub" }, t("phone_start_hint")) : null],
  working: (s) => [el("h1", {}, t("task_" + s.task)), el("div", { class: "spinner" }), el("p", { class: "sub" }, t("working"))],
  // The mobile mode (居宅同意取得型): the treatment of this first visit, before the method.
  choose_treatment: () => [
    noticeBox(),
    el("h1", { id: "treatment-question" }, t("treatment_title")),
    el("p", { class: "sub" }, t("treatment_hint")),
    el("div", { class: "buttons" },
      bigButton("treatment-home-visit", t("treatment_home_visit"),
                () => act("/api/treatment", { treatment: "home-visit" })),
      bigButton("treatment-online", t("treatment_online"),
                () => act("/api/treatment", { treatment: "online" }))),
    cancelRow(),
  ],
  choose_method: (s) => {
    const faceNote = s.face === "locked" ? t("face_locked") : s.face === "unavailable" ? t("face_unavailable") : "";
    const pinNote = !s.pin_set ? t("pin_not_set")
      : s.pin_tries_left === 0 ? t("pin_locked") : t("tries_left", { n: s.pin_tries_left });
    return [
      noticeBox(),
      el("h1", {}, t("choose_method")),
      el("div", { class: "buttons" },
        bigButton("method-face", t("method_face"), () => act("/api/method", { method: "face" }),
                  { disabled: s.face !== "available" }),
        // A card without a PIN (顔認証マイナンバーカード) is never offered the PIN pad.
        s.pin_set ? bigButton("method-pin", t("method_pin"), () => act("/api/method", { method: "pin" }),
                              { disabled: s.pin_tries_left === 0 }) : null,
        s.visual_check ? bigButton("method-visual", t("method_visual"),
                                   () => act("/api/method", { method: "visual" }), { secondary: true }) : null),
      el("p", { class: "sub", id: "face-note" }, faceNote),
      el("p", { class: "sub", id: "pin-note" }, t("method_pin") + ": " + pinNote),
      cancelRow(),
    ];
  },
  pin: (s) => {
    const keys = ["1", "2", "3", "4", "5", "6", "7", "8", "9"].map((d) =>
      el("button", { id: "pin-key-" + d, onclick: () => press(d) }, d));
    return [
      noticeBox(),
      el("h1", { id: "pin-title", "data-purpose": s.purpose },
         t(s.purpose === "register" ? "pin_title_register" : s.purpose === "phone" ? "pin_title_phone" : "pin_title")),
      s.wrong_pin ? el("p", { class: "error", id: "pin-wrong" }, t("pin_wrong")) : null,
      el("p", { id: "tries-left" }, t("tries_left", { n: s.tries_left })),
      el("div", { class: "dots", id: "pin-dots" }, "●".repeat(PIN.length) + "○".repeat(4 - PIN.length)),
      el("div", { class: "pad" }, ...keys,
        el("button", { id: "pin-clear", onclick: () => { PIN = ""; render(); } }, t("pin_clear")),
        el("button", { id: "pin-key-0", onclick: () => press("0") }, "0"),
        el("button", { id: "pin-ok", class: "ok", onclick: submitPin }, t("pin_ok"))),
      cancelRow(),
    ];
  },
  face: (s) => [
    el("h1", {}, t("face_title")),
    el("div", { class: "camera" }),
    el("p", { id: "face-failures" }, t("face_failures", { n: s.failures, max: s.max_failures })),
    s.last_score_permille !== null && s.last_score_permille !== undefined
      ? el("p", { class: "error", id: "face-score" },
           t("face_last_score", { s: s.last_score_permille, t: s.threshold_permille })) : null,
    el("div", { class: "buttons" },
      bigButton("camera-holder", t("camera_holder"), () => act("/api/face", { camera: "holder" })),
      bigButton("camera-stranger", t("camera_stranger"), () => act("/api/face", { camera: "stranger" }),
                { secondary: true })),
    cancelRow(),
  ],
  consent: (s) => [
    el("p", { class: "sub" }, t("consent_of", { i: s.index, n: s.total })),
    // 包括同意: one tap for every kind, offered before any single answer.
    s.comprehensive_offered ? el("div", { class: "comprehensive", id: "consent-all-box" },
      el("p", { class: "sub" }, t("consent_all_hint")),
      bigButton("consent-all", t("consent_all"), () => act("/api/consents", { all: true }))) : null,
    el("h1", { id: "consent-question", "data-item": s.item }, t("consent_" + s.item)),
    el("div", { class: "buttons" },
      bigButton("consent-yes", t("consent_yes"), () => act("/api/consents", { [s.item]: true })),
      bigButton("consent-no", t("consent_no"), () => act("/api/consents", { [s.item]: false }),
                { secondary: true })),
    cancelRow(),
  ],
  // 電子処方箋: the patient chooses how the prescription is issued.
  prescription: () => [
    el("h1", { id: "prescription-question" }, t("prescription_title")),
    el("p", { class: "sub" }, t("prescription_hint")),
    el("div", { class: "buttons" },
      bigButton("prescription-electronic", t("prescription_electronic"),
                () => act("/api/prescription", { choice: "electronic" })),
      bigButton("prescription-paper", t("prescription_paper"),
                () => act("/api/prescription", { choice: "paper" }), { secondary: true })),
    cancelRow(),
  ],
  offer_registration: (s) => [
    el("h1", {}, t("offer_registration")),
    el("p", { class: "sub", id: "registration-hint" },
       t(s.needs_pin === false ? "offer_registration_hint_no_pin" : "offer_registration_hint")),
    el("div", { class: "buttons" },
      bigButton("register-yes", t("register_yes"), () => act("/api/registration", { accept: true })),
      bigButton("register-no", t("register_no"), () => act("/api/registration", { accept: false }),
                { secondary: true })),
  ],
  done: (s) => [
    el("div", { class: "done", id: "done" }, t("done")),
    el("p", { id: "validity" }, t("validity") + ": " + s.validity_label),
    // The certificate's warning (rules of 2024-12-02): renew soon, or expired and in its grace
    // period (eligibility only, no data shared).
    s.warning ? el("div", { class: "notice", id: "cert-warning", "data-warning": s.warning },
                   t("cert_warning_" + s.warning,
                     { expiry: s.certificate_expiry || "", grace_until: s.grace_until || "" })) : null,
    s.registered_now ? el("p", { id: "registered-now" }, t("registered_now")) : null,
    s.prescription ? el("p", { id: "prescription", "data-prescription": s.prescription },
                        t("prescription_" + s.prescription + "_chosen")) : null,
    // A first visit at the mobile device: its treatment and the re-query period.
    s.treatment ? el("p", { id: "treatment", "data-treatment": s.treatment },
                     t("treatment_" + s.treatment.replace("-", "_"))) : null,
    s.requery_until ? el("p", { id: "requery-until", "data-until": s.requery_until },
                         t("requery_until", { until: s.requery_until })) : null,
    el("p", { class: "sub" }, t("done_hint")),
  ],
  // The outage path (資格申立書): the service cannot be reached; the patient declares the
  // insurance card's numbers and birth date. No PIN is asked for.
  outage_declare: (s) => {
    const field = (id, key, size) => el("label", { class: "field" }, t(key),
      el("input", { id, size: String(size), autocomplete: "off", inputmode: id === "decl-symbol" || id === "decl-number" ? "text" : "numeric" }));
    return [
      el("h1", { id: "outage-title" }, t("outage_title")),
      el("p", { class: "sub" }, t("outage_hint")),
      s.error ? el("p", { class: "error", id: "declare-error" }, s.error) : null,
      el("div", { class: "declaration" },
        field("decl-insurer", "n_insurer", 10), field("decl-symbol", "n_symbol", 10),
        field("decl-number", "n_number", 10), field("decl-branch", "n_branch", 4),
        field("decl-birth", "n_birth", 10)),
      el("div", { class: "buttons" }, bigButton("declare-submit", t("outage_submit"), submitDeclaration)),
      cancelRow(),
    ];
  },
  outage_recorded: (s) => [
    el("div", { class: "done", id: "outage-recorded" }, t("outage_recorded")),
    el("p", { id: "outage-waiting" }, t("outage_waiting", { n: s.waiting })),
    el("p", { class: "sub" }, t("done_hint")),
  ],
  failed: (s) => [
    el("div", { class: "failed", id: "failed" }, t("failed")),
    el("p", { id: "failure-reason", "data-reason": s.reason }, t("reason_" + s.reason)),
    s.result_code && ("code_" + s.result_code) !== t("code_" + s.result_code)
      ? el("p", { id: "result-message" }, t("code_" + s.result_code)) : null,
    s.result_code ? el("p", { class: "sub", id: "result-code" }, s.result_code) : null,
    el("p", { class: "sub" }, t("failed_hint")),
  ],
};

function startPhone() {
  postJson("/api/phone", {}).then(showAnswer);
}

function submitDeclaration() {
  const v = (id) => document.getElementById(id).value.trim();
  act("/api/declaration", { declaration: {
    insurer_number: v("decl-insurer"), symbol: v("decl-symbol"), number: v("decl-number"),
    branch: v("decl-branch"), birth_date: v("decl-birth"),
  } });
}

function press(d) {
  if (PIN.length < 4) PIN += d;
  render();
}

function submitPin() {
  if (PIN.length !== 4) return;
  const pin = PIN;
  PIN = "";
  act("/api/pin", { pin });
}

function render() {
  const s = STATE || { screen: "loading", session: null };
  document.body.dataset.screen = s.screen;
  // The mobile mode names itself on every screen.
  document.getElementById("mobile-mode").textContent = s.mobile ? t("mobile_mode") : "";
  document.body.dataset.session = s.session || "";
  const root = document.getElementById("screen");
  root.replaceChildren(...(SCREENS[s.screen] || SCREENS.loading)(s).filter((x) => x));
  document.getElementById("reader-error").textContent = s.reader_error ? t("reader_error") + s.reader_error : "";
}

document.getElementById("lang-toggle").addEventListener("click", () => toggleLang(render));
applyTexts();
render();
// The page is opened at /?token=TOKEN and the server writes the same per-launch token into
// <meta name="onshi-token">: fetches send it as X-Onshi-Token (i18n.js); an EventSource cannot send
// headers, so the stream takes it as ?token=. The URL's token is only a fallback for the meta.
if (onshiToken() === null) setToken(new URLSearchParams(location.search).get("token"));
const events = new EventSource("/api/events?token=" + encodeURIComponent(onshiToken() || ""));
events.addEventListener("state", (e) => show(JSON.parse(e.data)));
