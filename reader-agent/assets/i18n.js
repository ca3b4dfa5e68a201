// onshi kiosk: the texts of both pages, Japanese first, English on the toggle.
"use strict";

const TEXT = {
  ja: {
    lang_toggle: "English",
    kiosk_title: "顔認証付きカードリーダー",
    staff_title: "資格確認端末",
    simulator: "シミュレーター",
    insert_card: "マイナンバーカードを置いてください",
    insert_card_hint: "カードはご自身で置いてください。職員はカードや暗証番号に触れません。",
    notice_card_removed: "カードが取り出されたため、受付を中止しました。",
    notice_timed_out: "一定時間操作がなかったため、受付を中止しました。",
    notice_pin_locked: "暗証番号がロックされました（3回誤り）。顔認証をご利用ください。",
    notice_face_locked: "顔認証が10回失敗したため、このカードでは顔認証を利用できません。暗証番号をご利用ください。",
    notice_face_unavailable: "このカードでは顔認証を利用できません。",
    working: "処理中です。カードを取り出さないでください。",
    task_reading_card: "カードを読み取っています",
    task_reading_face: "顔写真を読み取っています",
    task_verifying_pin: "暗証番号を確認しています",
    task_matching_face: "顔を照合しています",
    task_confirming: "資格を確認しています",
    task_registering: "健康保険証の利用登録をしています",
    task_recording_outage: "受付内容を記録しています",
    task_reading_phone: "スマートフォンを読み取っています",
    task_phone_verification: "スマートフォンで本人確認してください",
    phone_start: "スマートフォンで受付",
    phone_start_hint: "スマートフォンのマイナ保険証は、汎用カードリーダーにかざしてください。",
    pin_title_phone: "スマホ用電子証明書の暗証番号（4桁）を入力してください",
    code_RESULT_CODE_PHONE_PIN_LOCKED: "スマートフォンの暗証番号がロックされています。市区町村の窓口で初期化してください。マイナンバーカードでも受付できます",
    code_RESULT_CODE_PHONE_VERIFICATION_REFUSED: "スマートフォンでの本人確認ができませんでした。マイナンバーカードでも受付できます",
    code_RESULT_CODE_PHONE_UNAVAILABLE: "スマートフォンを読み取れません。職員にお声がけください",
    outage_title: "資格確認システムに接続できません",
    outage_hint: "保険証の記号・番号と生年月日をご記入ください（資格申立書）。暗証番号は不要です。資格はシステムの復旧後に確認します。",
    outage_submit: "この内容で受付",
    outage_recorded: "受付内容を記録しました",
    outage_waiting: "復旧後に確認します（確認待ち {n} 件）。",
    reason_outage_not_recorded: "受付内容を記録できませんでした。職員にお声がけください",
    outage_section: "システム障害時の受付（資格申立書）",
    outage_state_on: "資格確認システムに接続できません（障害中）",
    outage_state_off: "資格確認システムに接続しています",
    outage_waiting_staff: "確認待ち: {n} 件（上限 {max} 件）",
    outage_caught_up: "復旧後に確認済み: {n} 件",
    outage_disagreements: "申立てと異なる結果（請求の修正が必要）",
    outage_acknowledge: "確認済み（請求を修正した）",
    n_outage: "障害時の受付として記録",
    choose_method: "本人確認の方法を選んでください",
    method_face: "顔認証",
    method_pin: "暗証番号",
    method_visual: "目視確認（職員）",
    face_locked: "顔認証は利用できません（10回失敗）",
    face_unavailable: "顔認証は利用できません",
    pin_locked: "暗証番号はロックされています",
    pin_not_set: "このカードには暗証番号がありません（顔認証マイナンバーカード）",
    tries_left: "残り {n} 回",
    pin_title: "暗証番号（4桁）を入力してください",
    pin_title_register: "利用登録のため、暗証番号（4桁）を入力してください",
    pin_wrong: "暗証番号が違います。",
    pin_clear: "訂正",
    pin_ok: "確定",
    face_title: "カメラに顔を向けてください",
    camera_holder: "本人の顔を映す",
    camera_stranger: "別人の顔を映す",
    face_failures: "失敗 {n} / {max} 回",
    face_last_score: "前回の照合スコア {s}（基準 {t}）",
    consent_of: "同意の確認 {i} / {n}",
    consent_medication: "過去の薬剤情報を、この医療機関に提供することに同意しますか？",
    consent_checkup: "特定健診等の情報を、この医療機関に提供することに同意しますか？",
    consent_clinical: "過去の診療情報を、この医療機関に提供することに同意しますか？",
    consent_surgery: "過去の手術情報を、この医療機関に提供することに同意しますか？",
    consent_yes: "同意する",
    consent_no: "同意しない",
    consent_all: "すべてに同意する（包括同意）",
    consent_all_hint: "薬剤・健診・診療・手術の情報をまとめて提供できます。個別に選ぶ場合は下の質問にお答えください。",
    prescription_title: "処方箋の受け取り方法を選んでください",
    prescription_hint: "電子処方箋なら、薬局にマイナンバーカードで処方内容が届きます。",
    prescription_electronic: "電子処方箋",
    prescription_paper: "紙の処方箋",
    prescription_electronic_chosen: "処方箋: 電子処方箋",
    prescription_paper_chosen: "処方箋: 紙の処方箋",
    mobile_mode: "訪問診療・オンライン診療（居宅同意取得型）",
    treatment_title: "診療の種類を選んでください",
    treatment_hint: "この確認で、次回からはカードなしで資格を再照会することに同意いただきます。",
    treatment_home_visit: "訪問診療・訪問看護",
    treatment_online: "オンライン診療",
    requery_until: "カードなしの再照会ができる期間: {until} まで",
    offer_registration: "このカードは健康保険証として利用登録されていません。今、登録しますか？",
    offer_registration_hint: "登録には暗証番号が必要です（一度だけの手続きです）。",
    offer_registration_hint_no_pin: "暗証番号のないカードです。確認に使った顔認証（または職員の目視確認）で登録します（一度だけの手続きです）。",
    register_yes: "登録する",
    register_no: "登録しない",
    done: "受付完了",
    done_hint: "カードをお取りください。",
    validity: "資格",
    registered_now: "健康保険証の利用登録が完了しました。",
    cert_warning_expiring: "マイナンバーカードの電子証明書の有効期限（{expiry}）が近づいています。お住まいの市区町村で更新してください。",
    cert_warning_in_grace: "マイナンバーカードの電子証明書の有効期限（{expiry}）が切れています。{grace_until}まではこのまま資格確認できますが、薬剤情報などの提供はできません。お住まいの市区町村で更新してください。",
    failed: "受付できませんでした",
    failed_hint: "カードをお取りのうえ、職員にお声がけください。マイナポータルの画面提示、または被保険者資格申立書の記入で受診できます。",
    reason_refused: "資格確認が拒否されました",
    reason_service_unreachable: "資格確認システムに接続できません",
    reason_card_unreadable: "カードを読み取れません",
    reason_card_error: "カードとの通信に失敗しました",
    reason_pin_locked: "暗証番号がロックされています",
    reason_no_pin_on_card: "このカードには暗証番号がなく、顔認証もご利用になれません。職員にお声がけください",
    reason_pin_not_set: "このカードには暗証番号がありません（顔認証マイナンバーカード）",
    reason_no_method_left: "本人確認の方法が残っていません",
    reason_cancelled: "受付を中止しました",
    reason_timed_out: "時間切れのため受付を中止しました",
    cancel: "中止",
    reader_error: "カードリーダーの状態: ",
    // staff
    visual_check: "目視確認モード",
    visual_on: "目視確認をオン",
    visual_off: "オフ",
    visual_state_on: "オン（職員 {id}）",
    visual_state_off: "オフ",
    todays: "本日の資格確認",
    search: "検索（氏名・カナ・番号・結果コード）",
    col_time: "時刻", col_method: "方法", col_outcome: "結果", col_name: "氏名",
    col_birth: "生年月日", col_insurer: "保険者", col_numbers: "記号・番号・枝番",
    col_copay: "負担割合", col_bracket: "限度額区分", col_validity: "資格",
    col_consents: "同意", col_actions: "",
    method_numbers: "記号番号", method_reader: "カードリーダー",
    "method_smartphone-android": "スマートフォン（Android）",
    "method_smartphone-iphone": "スマートフォン（iPhone）",
    outcome_confirmed: "確認済", outcome_refused: "拒否", outcome_error: "エラー",
    outcome_registered: "利用登録",
    medications: "薬剤情報", checkups: "健診情報",
    consent_names: "薬剤,健診,診療,手術",
    doc_DOCUMENT_KIND_SHIKAKU_KAKUNINSHO: "資格確認書",
    doc_DOCUMENT_KIND_SHIKAKU_JOHO_OSHIRASE: "資格情報のお知らせ",
    doc_no_period: "有効期間なし", doc_valid: "有効", doc_lapsed: "期限切れ",
    numbers_title: "保険証の記号・番号で確認（カードなし）",
    n_insurer: "保険者番号", n_symbol: "記号", n_number: "番号", n_branch: "枝番",
    n_birth: "生年月日（YYYYMMDD）", n_submit: "照会",
    batch_title: "一括照会（予約患者の事前確認）",
    batch_hint: "CSV: insurer_number,symbol,number,branch,birth_date",
    batch_submit: "送信",
    batch_processing: "処理中", batch_done: "処理完了", batch_failed: "失敗",
    batch_download: "結果をダウンロード",
    clinical_none: "該当するデータはありません",
    h_dispensed_on: "調剤日", h_drug_name: "薬剤名", h_usage: "用法", h_daily_quantity: "1日量",
    h_days: "日数", h_institution_name: "調剤した医療機関", h_examined_on: "受診日",
    h_height_cm_x10: "身長 cm", h_weight_kg_x10: "体重 kg", h_bmi_x10: "BMI",
    h_systolic_mmhg: "収縮期血圧", h_diastolic_mmhg: "拡張期血圧", h_hba1c_x10: "HbA1c %",
    h_judgement: "判定",
    none: "なし",
    login_title: "職員ログイン",
    login_staff_id: "職員ID",
    login_password: "パスワード",
    login_submit: "ログイン",
    login_failed: "職員IDまたはパスワードが違います。",
    login_throttled: "ログインの試行が多すぎます。しばらく待ってから、もう一度お試しください。",
    login_forbidden: "この画面へのアクセスは許可されていません。",
    login_error: "ログインできませんでした。",
    login_expired: "ログインの有効期限が切れました。もう一度ログインしてください。",
    logged_in_as: "職員",
    logout: "ログアウト",
  },
  en: {
    lang_toggle: "日本語",
    kiosk_title: "Face-recognition card reader",
    staff_title: "Reception terminal",
    simulator: "simulator",
    insert_card: "Please place your My Number card on the reader",
    insert_card_hint: "Place the card yourself. Staff never handle your card or your PIN.",
    notice_card_removed: "The card was removed, so the session was ended.",
    notice_timed_out: "The session ended because nothing happened for a while.",
    notice_pin_locked: "The PIN is now locked (3 wrong entries). Please use face authentication.",
    notice_face_locked: "Face authentication failed 10 times and is no longer available for this card. Please use the PIN.",
    notice_face_unavailable: "Face authentication is not available for this card.",
    working: "Please wait. Do not remove the card.",
    task_reading_card: "Reading the card",
    task_reading_face: "Reading the face photo",
    task_verifying_pin: "Checking the PIN",
    task_matching_face: "Matching the face",
    task_confirming: "Confirming eligibility",
    task_registering: "Registering the card for insurance use",
    task_recording_outage: "Recording your visit",
    task_reading_phone: "Reading the smartphone",
    task_phone_verification: "Please verify yourself on your smartphone",
    phone_start: "Use a smartphone",
    phone_start_hint: "Hold your smartphone My Number insurance card to the general-purpose reader.",
    pin_title_phone: "Enter the 4-digit PIN of your smartphone certificate",
    code_RESULT_CODE_PHONE_PIN_LOCKED: "Your smartphone's PIN is locked: it must be reset at the municipal office. You can use your My Number card instead",
    code_RESULT_CODE_PHONE_VERIFICATION_REFUSED: "The verification on your smartphone did not succeed. You can use your My Number card instead",
    code_RESULT_CODE_PHONE_UNAVAILABLE: "The smartphone cannot be read. Please ask the staff",
    outage_title: "The confirmation service cannot be reached",
    outage_hint: "Please enter your insurance card's numbers and your birth date (a declaration). No PIN is needed. Your insurance is confirmed when the service is back.",
    outage_submit: "Record my visit",
    outage_recorded: "Your visit is recorded",
    outage_waiting: "It will be confirmed when the service is back ({n} waiting).",
    reason_outage_not_recorded: "Your visit could not be recorded. Please ask the staff",
    outage_section: "Reception during an outage (declarations)",
    outage_state_on: "The confirmation service cannot be reached (outage)",
    outage_state_off: "The confirmation service answers",
    outage_waiting_staff: "Waiting for confirmation: {n} (at most {max})",
    outage_caught_up: "Caught up since start: {n}",
    outage_disagreements: "Confirmations that disagree with the declaration (billing to correct)",
    outage_acknowledge: "Done (billing corrected)",
    n_outage: "Record as an outage visit",
    choose_method: "How would you like to identify yourself?",
    method_face: "Face",
    method_pin: "PIN",
    method_visual: "Visual check (staff)",
    face_locked: "Face authentication is locked (10 failures)",
    face_unavailable: "Face authentication is not available",
    pin_locked: "The PIN is locked",
    pin_not_set: "This card has no PIN (a face-only My Number card)",
    tries_left: "{n} tries left",
    pin_title: "Enter your 4-digit PIN",
    pin_title_register: "Enter your 4-digit PIN to register the card",
    pin_wrong: "Wrong PIN.",
    pin_clear: "Clear",
    pin_ok: "OK",
    face_title: "Please look at the camera",
    camera_holder: "Show the holder's face",
    camera_stranger: "Show someone else's face",
    face_failures: "{n} of {max} failures",
    face_last_score: "Last match score {s} (threshold {t})",
    consent_of: "Consent {i} of {n}",
    consent_medication: "Do you agree to share your past medication information with this institution?",
    consent_checkup: "Do you agree to share your specific health checkup information with this institution?",
    consent_clinical: "Do you agree to share your past clinical information with this institution?",
    consent_surgery: "Do you agree to share your past surgery information with this institution?",
    consent_yes: "Agree",
    consent_no: "Do not agree",
    consent_all: "Agree to all (comprehensive consent)",
    consent_all_hint: "Share medication, checkup, clinical and surgery information at once, or answer each question below.",
    prescription_title: "How would you like your prescription?",
    prescription_hint: "With an electronic prescription, the pharmacy receives it through your My Number card.",
    prescription_electronic: "Electronic prescription",
    prescription_paper: "Paper prescription",
    prescription_electronic_chosen: "Prescription: electronic",
    prescription_paper_chosen: "Prescription: paper",
    mobile_mode: "Home visit or online care (first visit with the card)",
    treatment_title: "Which kind of care is this?",
    treatment_hint: "With this confirmation you agree that later visits are confirmed again without the card.",
    treatment_home_visit: "Home visit or home nursing",
    treatment_online: "Online care",
    requery_until: "Re-queries without the card possible until {until}",
    offer_registration: "This card is not registered for use as a health insurance card. Register it now?",
    offer_registration_hint: "Registration needs your PIN (it is done once).",
    offer_registration_hint_no_pin: "This card has no PIN: it is registered with the face authentication (or staff member's visual check) that just identified you (it is done once).",
    register_yes: "Register",
    register_no: "Not now",
    done: "Reception complete",
    done_hint: "Please take your card.",
    validity: "Eligibility",
    registered_now: "The card is now registered for insurance use.",
    cert_warning_expiring: "Your card's electronic certificate expires on {expiry}. Please renew it at your municipal office.",
    cert_warning_in_grace: "Your card's electronic certificate expired on {expiry}. Until {grace_until} your eligibility can still be confirmed, but no medication or other information can be shared. Please renew it at your municipal office.",
    failed: "Reception could not be completed",
    failed_hint: "Please take your card and speak to the staff. You can show your eligibility on Mynaportal or fill in a self-declaration form.",
    reason_refused: "The confirmation was refused",
    reason_service_unreachable: "The confirmation service cannot be reached",
    reason_card_unreadable: "The card cannot be read",
    reason_card_error: "Communication with the card failed",
    reason_pin_locked: "The PIN is locked",
    reason_no_pin_on_card: "This card has no PIN and face authentication is not possible. Please ask the staff",
    reason_pin_not_set: "This card has no PIN (a face-only My Number card)",
    reason_no_method_left: "No way to identify you is left",
    reason_cancelled: "Cancelled",
    reason_timed_out: "The session timed out",
    cancel: "Cancel",
    reader_error: "Card reader: ",
    visual_check: "Visual check mode",
    visual_on: "Switch visual check on",
    visual_off: "Off",
    visual_state_on: "on (staff {id})",
    visual_state_off: "off",
    todays: "Today's confirmations",
    search: "Search (name, kana, numbers, result code)",
    col_time: "Time", col_method: "Method", col_outcome: "Outcome", col_name: "Name",
    col_birth: "Born", col_insurer: "Insurer", col_numbers: "Symbol / number / branch",
    col_copay: "Co-pay", col_bracket: "High-cost bracket", col_validity: "Eligibility",
    col_consents: "Consents", col_actions: "",
    method_numbers: "numbers", method_reader: "card reader",
    "method_smartphone-android": "smartphone (Android)",
    "method_smartphone-iphone": "smartphone (iPhone)",
    outcome_confirmed: "confirmed", outcome_refused: "refused", outcome_error: "error",
    outcome_registered: "registered",
    medications: "Medication", checkups: "Checkups",
    consent_names: "medication,checkup,clinical,surgery",
    doc_DOCUMENT_KIND_SHIKAKU_KAKUNINSHO: "資格確認書 (eligibility certificate)",
    doc_DOCUMENT_KIND_SHIKAKU_JOHO_OSHIRASE: "資格情報のお知らせ (qualification notice)",
    doc_no_period: "no validity period", doc_valid: "valid", doc_lapsed: "lapsed",
    numbers_title: "Confirm by insurance-card numbers (no card)",
    n_insurer: "Insurer number", n_symbol: "Symbol", n_number: "Number", n_branch: "Branch",
    n_birth: "Birth date (YYYYMMDD)", n_submit: "Confirm",
    batch_title: "Batch pre-check of reservations",
    batch_hint: "CSV: insurer_number,symbol,number,branch,birth_date",
    batch_submit: "Submit",
    batch_processing: "processing", batch_done: "done", batch_failed: "failed",
    batch_download: "Download results",
    clinical_none: "No data",
    h_dispensed_on: "Dispensed", h_drug_name: "Drug", h_usage: "Usage", h_daily_quantity: "Daily dose",
    h_days: "Days", h_institution_name: "Dispensed by", h_examined_on: "Examined",
    h_height_cm_x10: "Height cm", h_weight_kg_x10: "Weight kg", h_bmi_x10: "BMI",
    h_systolic_mmhg: "Systolic", h_diastolic_mmhg: "Diastolic", h_hba1c_x10: "HbA1c %",
    h_judgement: "Judgement",
    none: "none",
    login_title: "Staff log-in",
    login_staff_id: "Staff id",
    login_password: "Password",
    login_submit: "Log in",
    login_failed: "The staff id or password is wrong.",
    login_throttled: "Too many log-in attempts. Please wait a moment and try again.",
    login_forbidden: "Access to this page is not allowed.",
    login_error: "Could not log in.",
    login_expired: "Your log-in has expired. Please log in again.",
    logged_in_as: "Staff",
    logout: "Log out",
  },
};

let LANG = localStorage.getItem("onshi-lang") === "en" ? "en" : "ja";

function t(key, vars) {
  const table = key in TEXT[LANG] ? TEXT[LANG] : TEXT.ja;
  let s = key in table ? table[key] : key;
  for (const [k, v] of Object.entries(vars || {})) s = s.replace("{" + k + "}", v);
  return s;
}

function applyTexts() {
  document.documentElement.lang = LANG;
  for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
  for (const el of document.querySelectorAll("[data-tp]")) el.placeholder = t(el.dataset.tp);
}

function toggleLang(rerender) {
  LANG = LANG === "ja" ? "en" : "ja";
  localStorage.setItem("onshi-lang", LANG);
  applyTexts();
  if (rerender) rerender();
}

// The secret sent as X-Onshi-Token on every fetch (and as ?token= on EventSources, which cannot
// send headers). Cookies never authenticate: on 127.0.0.1 they are shared across ports.
//  - kiosk page: the per-launch token the server writes into <meta name="onshi-token">;
//  - staff page: no meta; the per-log-in token, set with setToken() after a log-in or from
//    sessionStorage, and cleared with setToken(null).
let ONSHI_TOKEN = null;
function setToken(tok) {
  ONSHI_TOKEN = typeof tok === "string" && tok !== "" ? tok : null;
}
// The token, or null when there is none (then no X-Onshi-Token header is sent).
function onshiToken() {
  if (ONSHI_TOKEN !== null) return ONSHI_TOKEN;
  const meta = document.querySelector('meta[name="onshi-token"]');
  const v = meta ? meta.content : "";
  return v && v !== "{{ONSHI_TOKEN}}" ? v : null;
}
function token() { return onshiToken(); }

function tokenHeaders(extra) {
  const h = Object.assign({}, extra || {});
  const tok = onshiToken();
  if (tok !== null) h["X-Onshi-Token"] = tok;
  return h;
}

// Network failures answer { ok: false, status: 0, data: null } instead of throwing.
async function fetchJson(url, init) {
  let r;
  try {
    r = await fetch(url, Object.assign({ credentials: "same-origin", cache: "no-store" }, init));
  } catch (_) {
    return { ok: false, status: 0, data: null };
  }
  let data = null;
  try { data = await r.json(); } catch (_) { data = null; }
  return { ok: r.ok, status: r.status, data };
}

function postJson(url, body) {
  return fetchJson(url, {
    method: "POST",
    headers: tokenHeaders({ "content-type": "application/json" }),
    body: JSON.stringify(body || {}),
  });
}

function getJson(url) {
  return fetchJson(url, { method: "GET", headers: tokenHeaders() });
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "onclick") e.addEventListener("click", v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}
