// The H5 gate scanner (/scan). Plain ES module, no build step.
//
// Storage: the device credential (the setup payload: device id, secret, venue) is the ONLY thing
// kept in localStorage, under "chongjun.device"; it is what makes this browser a scanner. The
// device JWT lives in memory and is refreshed before it expires. Scan results (masked names) are
// kept in memory only, for the recent list and the undo button.
//
// Offline (offline.js): the venue's signed offline bundle and the decisions taken without the
// network are kept in IndexedDB (no name or personal data: the code, its jti and pseudonym); they
// are uploaded to POST /v1/scans/offline as soon as the network returns.

import * as offline from "/faces/offline.js";

const STORE = "chongjun.device";
const $ = (id) => document.getElementById(id);
const screens = ["setup", "ready", "decision", "blocked"];

let device = null;        // {device_id, secret, venue_id, venue}
let token = null;         // {value, expiresAt}
let refreshTimer = null;
let busy = false;
let mode = "wedge";
let camera = null;        // {stream, timer, detector}
let lastDecision = null;  // {redemption_id, code, ...}
const recent = [];        // newest first, at most 10
let isOffline = !navigator.onLine;
let bundle = null;        // the offline bundle's payload (offline.js)
let bundleTimer = null;
let syncing = null;       // the upload in progress (a promise), so two never overlap
const BUNDLE_REFRESH_MS = 10 * 60_000;

function show(name) {
  for (const s of screens) $(s).hidden = s !== name;
  document.body.dataset.screen = name;
  if (name === "ready" && mode === "wedge") $("code-input").focus();
}

// ---- setup --------------------------------------------------------------------------------

function b64urlDecode(text) {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const padded = b64 + "===".slice((b64.length + 3) % 4);
  const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
}

function parseSetup(text) {
  let payload;
  try {
    payload = JSON.parse(text);
  } catch {
    throw new Error("这不是设备设置码 · This is not a device setup code");
  }
  const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  if (!payload || payload.kind !== "chongjun-device-setup" || payload.v !== 1
      || !uuid.test(payload.device_id || "") || !uuid.test(payload.venue_id || "")
      || typeof payload.secret !== "string" || !payload.secret) {
    throw new Error("这不是设备设置码 · This is not a device setup code");
  }
  return {
    device_id: payload.device_id,
    secret: payload.secret,
    venue_id: payload.venue_id,
    venue: String(payload.venue || ""),
  };
}

async function setUp(text) {
  const candidate = parseSetup(text);
  device = candidate;
  token = null;
  await ensureToken(true);  // proves the secret before it is kept
  localStorage.setItem(STORE, JSON.stringify(device));
  enterReady();
  afterOnline();
}

function setupError(err) {
  $("setup-error").textContent = err.message;
  $("setup-error").hidden = false;
}

// ---- device token -------------------------------------------------------------------------

class Blocked extends Error {}

async function ensureToken(force = false) {
  if (!force && token && token.expiresAt - Date.now() > 60_000) return token.value;
  let response;
  try {
    response = await fetch("/v1/devices/token", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ device_id: device.device_id, secret: device.secret }),
    });
  } catch {
    const err = new Error("网络不通，无法连接服务器 · Network unreachable");
    err.network = true;
    throw err;
  }
  if (response.status === 401 || response.status === 403 || response.status === 422 || response.status === 400) {
    throw new Blocked("此设备已停用或密钥已更换 · This device was revoked or its secret was rolled");
  }
  if (!response.ok) throw new Error(`服务器暂时不可用 (${response.status}) · Server unavailable`);
  const body = await response.json();
  token = { value: body.access_token, expiresAt: Date.now() + body.expires_in * 1000 };
  clearTimeout(refreshTimer);
  // Refresh a minute before expiry (or at 80% of a short lifetime).
  const lead = Math.max(5_000, Math.min(60_000, body.expires_in * 200));
  refreshTimer = setTimeout(() => ensureToken(true).then(updateState, handleFailure), body.expires_in * 1000 - lead);
  updateState();
  return token.value;
}

const clock = (ms) => new Date(ms).toLocaleTimeString("zh-CN", { hour12: false, hour: "2-digit", minute: "2-digit" });

function updateState() {
  const banner = $("offline-banner");
  document.body.dataset.network = isOffline ? "offline" : "online";
  const bundleText = bundle
    ? (bundle.exp * 1000 > Date.now() ? `离线包至 ${clock(bundle.exp * 1000)} · offline bundle until ${clock(bundle.exp * 1000)}`
      : "离线包已过期 · offline bundle expired")
    : "无离线包 · no offline bundle";
  $("bundle-state").textContent = bundleText;
  $("bundle-state").dataset.ready = String(Boolean(bundle && bundle.exp * 1000 > Date.now()));
  banner.hidden = !isOffline;
  if (isOffline) {
    $("device-state").textContent = "离线 · offline";
  } else if (token) {
    $("device-state").textContent = `在线 · online · 令牌至 ${clock(token.expiresAt)}`;
  }
  offline.pendingDecisions().then((pending) => {
    $("pending-count").textContent = String(pending.length);
    $("pending-line").hidden = pending.length === 0 && !isOffline;
  }).catch(() => {});
}

// ---- offline: bundle, state, upload -------------------------------------------------------

async function refreshBundle() {
  clearTimeout(bundleTimer);
  bundleTimer = setTimeout(() => refreshBundle().catch(() => {}), BUNDLE_REFRESH_MS);
  let response;
  try {
    response = await fetch("/v1/scans/offline-bundle", { headers: { Authorization: `Bearer ${await ensureToken()}` } });
  } catch {
    return;  // offline: keep the bundle we have
  }
  if (!response.ok) return;
  bundle = await offline.saveBundle(await response.text());
  updateState();
}

function setOffline(value) {
  if (isOffline === value) return;
  isOffline = value;
  updateState();
  if (!value) goOnline();
}

async function goOnline() {
  try {
    await ensureToken(true);
    await syncPending();
    await refreshBundle();
  } catch (err) {
    if (err.network) setOffline(true);
    else handleFailure(err);
  }
}

// Upload every pending offline decision (at most 200 a request); the server answers each once,
// so a lost answer is simply sent again.
function syncPending() {
  if (!syncing) {
    syncing = (async () => {
      const totals = { recorded: 0, conflict: 0, rejected: 0 };
      let pending = await offline.pendingDecisions();
      while (pending.length) {
        const batch = pending.slice(0, 200);
        const answer = await deviceCall("/v1/scans/offline", { scans: offline.uploadItems(batch) }, null);
        await offline.keepResults(answer.items);
        for (const item of answer.items) totals[item.outcome] += 1;
        for (const item of answer.items) {
          const shown = recent.find((r) => r.local_id === item.local_id);
          if (shown) {
            Object.assign(shown, { outcome: item.outcome, outcome_reason: item.reason, outcome_message: item.message,
                                   redemption_id: item.redemption_id });
          }
        }
        pending = await offline.pendingDecisions();
      }
      if (totals.recorded + totals.conflict + totals.rejected) {
        const sync = $("sync-state");
        sync.textContent = `已上传离线记录 · uploaded: 记录 recorded ${totals.recorded} · 冲突 conflict ${totals.conflict}`
          + ` · 拒绝 rejected ${totals.rejected}`;
        sync.dataset.conflicts = String(totals.conflict + totals.rejected);
        sync.hidden = false;
      }
      renderRecent();
      updateState();
    })().finally(() => { syncing = null; });
  }
  return syncing;
}

async function offlineScan(code, benefitId, companions) {
  const decision = await offline.decideOffline(code, {
    bundle, venueId: device.venue_id, benefitId, companions,
  });
  showDecision(decision, code);
  updateState();
}

function block(err) {
  stopCamera();
  clearTimeout(refreshTimer);
  token = null;
  $("blocked-title").textContent = "设备不可用 · Device unavailable";
  $("blocked-detail").textContent = err.message + "。请联系管理员在后台重新生成设置码。 Ask an administrator for a new setup code.";
  show("blocked");
}

function handleFailure(err) {
  if (err instanceof Blocked) block(err);
  else if (err.network) { setOffline(true); if (document.body.dataset.screen !== "decision") show("ready"); }
  else showReadyError(err.message);
}

// ---- scanning -----------------------------------------------------------------------------

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// POST with the device token; the same Idempotency-Key on every retry of one scan, so a
// network failure never counts twice (the server answers the first decision again).
async function deviceCall(path, body, key) {
  let refreshed = false;
  for (let attempt = 0; ; attempt++) {
    const headers = { "Content-Type": "application/json", Authorization: `Bearer ${await ensureToken()}` };
    if (key) headers["Idempotency-Key"] = key;
    let response;
    try {
      response = await fetch(path, { method: "POST", headers, body: JSON.stringify(body) });
    } catch {
      if (attempt < 1 && navigator.onLine) { await sleep(400); continue; }
      const err = new Error("网络不通，请重试 · Network failure, try again");
      err.network = true;
      throw err;
    }
    if (response.status === 401 && !refreshed) {
      refreshed = true;
      await ensureToken(true);  // throws Blocked when the device itself is refused
      continue;
    }
    if ([502, 503, 504].includes(response.status) && attempt < 3) { await sleep(400 * 2 ** attempt); continue; }
    if (response.status === 409 && key && attempt < 3) { await sleep(300); continue; }  // the first try still in flight
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const err = new Error(problemText(response.status, data));
      err.problem = data;
      throw err;
    }
    return data;
  }
}

function problemText(status, problem) {
  const slug = String(problem.type || "").split(":").pop();
  const known = {
    "scan-rate-limited": "扫码过快，请稍候 · Too many scans, wait a moment",
    "reversal-window-closed": "已超过可撤销时限 · The undo window has closed",
    "already-reversed": "该记录已撤销 · Already reversed",
    "venue-not-allowed": "本设备不属于该场馆 · This device does not belong to the venue",
  };
  return known[slug] || `${problem.title || "请求失败 Request failed"} (${status})`;
}

async function submitScan(code, benefitId = null) {
  code = code.trim();
  if (!code || busy) return;
  busy = true;
  $("ready-error").hidden = true;
  const companions = Math.max(0, Math.min(20, parseInt($("companions").value, 10) || 0));
  const body = { code, venue_id: device.venue_id, companions };
  if (benefitId) body.benefit_id = benefitId;
  try {
    if (isOffline) {
      await offlineScan(code, benefitId, companions);
    } else {
      try {
        showDecision(await deviceCall("/v1/scans", body, crypto.randomUUID()), code);
      } catch (err) {
        if (!err.network) throw err;
        // The network went away under this scan: decide it here. Had the server already taken
        // it, the upload answers it as a conflict (code used), never a second count.
        setOffline(true);
        await offlineScan(code, benefitId, companions);
      }
    }
  } catch (err) {
    handleFailure(err);
  } finally {
    busy = false;
    $("code-input").value = "";
  }
}

function showReadyError(text) {
  $("ready-error").textContent = text;
  $("ready-error").hidden = false;
  show("ready");
}

function showDecision(d, code) {
  const ok = d.decision === "accepted";
  lastDecision = { ...d, code, at: new Date() };
  const screen = $("decision");
  screen.classList.toggle("ok", ok);
  screen.classList.toggle("no", !ok);
  screen.dataset.reason = d.reason;
  screen.classList.toggle("offline", Boolean(d.offline));
  $("d-verdict").textContent = ok ? (d.offline ? "✓ 离线通过 Accepted offline" : "✓ 通过 Accepted") : "✗ 拒绝 Refused";
  $("d-reason").textContent = d.message;
  $("d-reason-en").textContent = d.message_en;
  $("d-priority").hidden = !d.priority;
  $("d-offline").hidden = !d.offline;
  $("d-name").textContent = d.holder ? d.holder.name_masked : "—";
  $("d-category").textContent = d.holder ? d.holder.category_label : "—";
  $("d-benefit").textContent = d.benefit ? `${d.benefit.name_zh} (${d.benefit.code})` : "—";
  // omit_defaults: a 0 is not sent, so every count defaults to 0 here.
  const allowed = d.companions_allowed ?? 0;
  $("d-companions").textContent = ok ? `${d.companions ?? 0} / ${allowed}` : String(allowed);
  // Only what the server said: a refusal before the holder was known shows no empty boxes.
  $("d-name").parentElement.hidden = !d.holder;
  $("d-category").parentElement.hidden = !d.holder;
  $("d-benefit").parentElement.hidden = !d.benefit;
  $("d-companions").parentElement.hidden = !(ok || allowed);
  $("d-undo").hidden = !(ok && (d.redemption_id || d.local_id));
  const choices = $("d-choices");
  choices.replaceChildren();
  choices.hidden = !(d.choices && d.choices.length);
  for (const choice of d.choices || []) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = `${choice.name_zh} (${choice.code})`;
    button.addEventListener("click", () => { enterReady(); submitScan(code, choice.id); });
    choices.append(button);
  }
  if (ok) {
    recent.unshift({ ...lastDecision, reversed: false });
    recent.splice(10);
    $("companions").value = "0";
  }
  renderRecent();
  cue(ok, d.priority);
  show("decision");
  $("d-next").focus();
}

// What an upload conflict means at the gate (the holder went in; the server did not count it).
const CONFLICTS = {
  replayed: "该码已在别处使用 code used elsewhere",
  quota_exhausted: "优待次数已用完 quota used up",
  venue_capacity_reached: "今日名额已满 capacity reached",
  offline_budget_exceeded: "超出离线额度 over the offline budget",
};

function renderRecent() {
  const list = $("recent");
  list.replaceChildren();
  for (const item of recent) {
    const li = document.createElement("li");
    const time = item.at.toLocaleTimeString("zh-CN", { hour12: false });
    const text = document.createElement("span");
    const holder = item.holder ? item.holder.name_masked : (item.offline ? "离线 offline" : "");
    text.textContent = `${time} ${holder} · ${item.benefit ? item.benefit.name_zh : ""}`
      + (item.companions ? ` +${item.companions}` : "") + (item.reversed ? " · 已撤销 reversed" : "");
    li.append(text);
    if (item.offline && !item.reversed) {
      const state = document.createElement("span");
      state.className = `tag ${item.outcome || "pending"}`;
      state.textContent = {
        recorded: "已记录 recorded", conflict: `冲突·未计入 conflict: ${CONFLICTS[item.outcome_reason] || item.outcome_message}`,
        rejected: `拒绝·未计入 rejected: ${item.outcome_message}`,
      }[item.outcome] || "待上传 pending";
      li.dataset.outcome = item.outcome || "pending";
      li.append(state);
    }
    if (!item.reversed && !(item.offline && item.outcome)) {
      const undo = document.createElement("button");
      undo.type = "button";
      undo.className = "secondary small";
      undo.textContent = "撤销 Undo";
      undo.addEventListener("click", () => reverse(item));
      li.append(undo);
    }
    list.append(li);
  }
}

async function reverse(item) {
  const reason = "现场撤销：误扫或持码人未入场 (gate undo)";
  if (!window.confirm(`撤销 ${item.holder ? item.holder.name_masked : ""} 的核验？ Undo this redemption?`)) return;
  if (item.offline && !item.outcome) {  // not uploaded yet: forget it here, nothing reaches the ledger
    await offline.deleteDecision(item.local_id);
    item.reversed = true;
    renderRecent();
    enterReady();
    return;
  }
  try {
    await deviceCall(`/v1/scans/${item.redemption_id}/reversal`, { reason }, null);
    item.reversed = true;
    renderRecent();
    enterReady();
    $("device-state").textContent = "已撤销 · Reversed";
  } catch (err) {
    handleFailure(err);
  }
}

// Sound and vibration: two rising beeps for yes, one low buzz for no (no audio file needed).
let audio = null;
function cue(ok, priority) {
  try {
    audio = audio || new AudioContext();
    const tones = ok ? (priority ? [880, 1175, 1568] : [880, 1320]) : [220];
    tones.forEach((freq, i) => {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.type = ok ? "sine" : "square";
      osc.frequency.value = freq;
      gain.gain.value = 0.15;
      osc.connect(gain).connect(audio.destination);
      const start = audio.currentTime + i * 0.14;
      osc.start(start);
      osc.stop(start + (ok ? 0.12 : 0.5));
    });
  } catch { /* no audio device: the colour and text still say it */ }
  if (navigator.vibrate) navigator.vibrate(ok ? [80] : [300, 100, 300]);
}

// ---- camera -------------------------------------------------------------------------------

async function startCamera(onCode) {
  stopCamera();
  const box = $("camera-box");
  const state = $("camera-state");
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new Error("此浏览器无法使用摄像头（需 HTTPS） · Camera unavailable here (HTTPS needed)");
  }
  const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
  const video = $("camera");
  video.srcObject = stream;
  await video.play();
  box.hidden = false;
  let detector = null;
  if ("BarcodeDetector" in window) {
    try {
      const formats = await window.BarcodeDetector.getSupportedFormats();
      if (formats.includes("qr_code")) detector = new window.BarcodeDetector({ formats: ["qr_code"] });
    } catch { detector = null; }
  }
  state.textContent = detector ? "摄像头已开启 (BarcodeDetector)" : "摄像头已开启 (jsQR)";
  const canvas = document.createElement("canvas");
  const context = canvas.getContext("2d", { willReadFrequently: true });
  let last = { text: "", at: 0 };
  camera = { stream, timer: null };
  const tick = async () => {
    if (!camera) return;
    let text = null;
    if (video.readyState >= 2 && video.videoWidth) {
      if (detector) {
        const found = await detector.detect(video).catch(() => []);
        text = found.length ? found[0].rawValue : null;
      } else if (window.jsQR) {
        canvas.width = video.videoWidth;
        canvas.height = video.videoHeight;
        context.drawImage(video, 0, 0);
        const image = context.getImageData(0, 0, canvas.width, canvas.height);
        const found = window.jsQR(image.data, image.width, image.height, { inversionAttempts: "dontInvert" });
        text = found ? found.data : null;
      }
    }
    // The same code in front of the lens is read once, not on every frame.
    if (text && !(text === last.text && Date.now() - last.at < 4000) && !busy && document.body.dataset.screen !== "decision") {
      last = { text, at: Date.now() };
      await onCode(text);
    }
    if (camera) camera.timer = setTimeout(tick, 150);
  };
  tick();
}

function stopCamera() {
  if (!camera) return;
  clearTimeout(camera.timer);
  for (const track of camera.stream.getTracks()) track.stop();
  camera = null;
  $("camera-box").hidden = true;
}

function setMode(next) {
  mode = next;
  $("mode-wedge").setAttribute("aria-pressed", String(next === "wedge"));
  $("mode-camera").setAttribute("aria-pressed", String(next === "camera"));
  if (next === "camera") {
    startCamera((text) => submitScan(text)).catch((err) => { setMode("wedge"); showReadyError(err.message); });
  } else {
    stopCamera();
    $("code-input").focus();
  }
}

// ---- screens ------------------------------------------------------------------------------

function enterReady() {
  $("venue-name").textContent = device.venue || "场馆 Venue";
  $("ready-error").hidden = true;
  updateState();
  show("ready");
  if (mode === "camera" && !camera) setMode("camera");
}

function forget() {
  if (!window.confirm("解除后需重新扫描设置码。确定？ Forget this device?")) return;
  localStorage.removeItem(STORE);
  device = null;
  token = null;
  stopCamera();
  clearTimeout(refreshTimer);
  show("setup");
}

function wire() {
  $("setup-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setUp($("setup-text").value.trim()).catch(setupError);
  });
  $("setup-camera").addEventListener("click", () => {
    $("setup").append($("camera-box"));
    startCamera(async (text) => {
      try {
        parseSetup(text);
      } catch {
        return;  // some other QR: keep looking
      }
      stopCamera();
      $("ready").insertBefore($("camera-box"), $("ready-error"));
      await setUp(text).catch(setupError);
    }).catch(setupError);
  });
  $("scan-form").addEventListener("submit", (event) => {
    event.preventDefault();
    submitScan($("code-input").value);
  });
  // The companions field takes digits only; anything else is a hardware scanner starting a code
  // (codes begin with letters: CJ1:, SSM1:), so it goes to the code field, keystroke included.
  $("companions").addEventListener("keydown", (event) => {
    if (event.key.length === 1 && !/[0-9]/.test(event.key)) $("code-input").focus();
    else if (event.key === "Enter") { event.preventDefault(); $("code-input").focus(); }
  });
  $("mode-wedge").addEventListener("click", () => setMode("wedge"));
  $("mode-camera").addEventListener("click", () => setMode("camera"));
  $("d-next").addEventListener("click", () => enterReady());
  $("d-undo").addEventListener("click", () => {
    const item = recent.find((r) => (lastDecision.local_id ? r.local_id === lastDecision.local_id
      : r.redemption_id === lastDecision.redemption_id));
    if (item) reverse(item);
  });
  $("forget").addEventListener("click", forget);
  $("blocked-reset").addEventListener("click", () => {
    localStorage.removeItem(STORE);
    device = null;
    show("setup");
  });
  // A hardware scanner types into whatever has focus: keep the code field focused while ready,
  // and let the Enter on the decision screen move on to the next person.
  document.addEventListener("keydown", (event) => {
    if (document.body.dataset.screen === "decision" && event.key === "Enter" && event.target.id !== "d-undo") {
      event.preventDefault();
      enterReady();
    } else if (document.body.dataset.screen === "ready" && mode === "wedge"
               && event.target === document.body && event.key.length === 1) {
      $("code-input").focus();
    }
  });
}

async function start() {
  wire();
  if ("serviceWorker" in navigator) {  // so that the page opens again without the network
    navigator.serviceWorker.register("/scan-sw.js", { scope: "/scan" }).catch(() => {});
  }
  window.addEventListener("offline", () => setOffline(true));
  window.addEventListener("online", () => setOffline(false));
  bundle = await offline.loadBundle().catch(() => null);
  updateState();
  const hash = new URLSearchParams(location.hash.slice(1));
  const link = hash.get("setup");
  if (link) {
    // The link carries the device secret: drop it from the address bar and history at once.
    history.replaceState(null, "", location.pathname);
    try {
      await setUp(b64urlDecode(link));
      return;
    } catch (err) {
      if (err instanceof Blocked) return block(err);
      show("setup");
      return setupError(err instanceof TypeError || err instanceof DOMException
        ? new Error("设置链接已损坏 · The setup link is damaged") : err);
    }
  }
  const stored = localStorage.getItem(STORE);
  if (!stored) return show("setup");
  try {
    device = parseSetup(JSON.stringify({ kind: "chongjun-device-setup", v: 1, ...JSON.parse(stored) }));
    await ensureToken(true);
    enterReady();
    afterOnline();
  } catch (err) {
    if (err instanceof Blocked) return block(err);
    enterReady();
    if (err.network) setOffline(true);
    else showReadyError(err.message);
  }
}

// Online with a token: keep the bundle fresh and send what was decided offline.
function afterOnline() {
  refreshBundle().catch(() => {});
  syncPending().catch(handleFailure);
}

start();
