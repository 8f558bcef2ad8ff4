// Offline mode of the gate scanner (issue 15 §4). Plain ES module, no build step.
//
// While online the scanner keeps the signed offline bundle of its venue (GET /v1/scans/offline-bundle)
// in IndexedDB. Without the network it decides a 崇军码 itself: the code's signature is checked
// with WebCrypto against the bundle's keys (EdDSA or ES256), its time against this clock, its jti
// against the decisions kept here, and the bundle's offline budget (accepts per hour, per holder
// and day) against what this gate accepted. It cannot know who the holder is (the code carries a
// pseudonym, `sub`) nor check eligibility and caps: those are decided by the server when the
// decisions are uploaded (POST /v1/scans/offline), each answered recorded, conflict or rejected.
//
// IndexedDB "chongjun-scanner": store "bundle" (key "current": {jws, payload}) and store
// "decisions" (key local_id): every offline accept, with its upload outcome once known.

const DB = "chongjun-scanner";
const LEEWAY_S = 30;
const enc = new TextEncoder();

function b64urlBytes(text) {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const padded = b64 + "===".slice((b64.length + 3) % 4);
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
}

function b64urlJson(text) {
  return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(b64urlBytes(text)));
}

// ---- IndexedDB ----------------------------------------------------------------------------

let dbPromise = null;

function db() {
  if (!dbPromise) {
    dbPromise = new Promise((resolve, reject) => {
      const open = indexedDB.open(DB, 1);
      open.onupgradeneeded = () => {
        open.result.createObjectStore("bundle");
        open.result.createObjectStore("decisions", { keyPath: "local_id" });
      };
      open.onsuccess = () => resolve(open.result);
      open.onerror = () => reject(open.error);
    });
  }
  return dbPromise;
}

async function tx(store, mode, work) {
  const database = await db();
  return new Promise((resolve, reject) => {
    const t = database.transaction(store, mode);
    const request = work(t.objectStore(store));
    t.oncomplete = () => resolve(request ? request.result : undefined);
    t.onerror = () => reject(t.error);
    t.onabort = () => reject(t.error);
  });
}

export const allDecisions = () => tx("decisions", "readonly", (s) => s.getAll());
export const putDecision = (d) => tx("decisions", "readwrite", (s) => s.put(d));
export const deleteDecision = (localId) => tx("decisions", "readwrite", (s) => s.delete(localId));
export async function pendingDecisions() {
  return (await allDecisions()).filter((d) => !d.outcome).sort((a, b) => a.decided_at.localeCompare(b.decided_at));
}

// ---- the bundle ---------------------------------------------------------------------------

const keyCache = new Map();

async function importKey(jwk) {
  if (keyCache.has(jwk.kid)) return keyCache.get(jwk.kid);
  let key = null;
  if (jwk.alg === "EdDSA" && jwk.kty === "OKP" && jwk.crv === "Ed25519") {
    key = { alg: "EdDSA", key: await crypto.subtle.importKey("jwk", { kty: "OKP", crv: "Ed25519", x: jwk.x }, { name: "Ed25519" }, false, ["verify"]) };
  } else if (jwk.alg === "ES256" && jwk.kty === "EC" && jwk.crv === "P-256") {
    key = { alg: "ES256", key: await crypto.subtle.importKey("jwk", { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y }, { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]) };
  }  // SM2 (the gm profile) has no WebCrypto algorithm: such codes are decided online only
  keyCache.set(jwk.kid, key);
  return key;
}

// A compact JWS verified with one of `jwks`: its header and claims, or null.
async function verifyJws(token, jwks, typ) {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  let header;
  try { header = b64urlJson(parts[0]); } catch { return null; }
  if (header.typ !== typ) return null;
  const jwk = (jwks.keys || []).find((k) => k.kid === header.kid);
  const key = jwk && await importKey(jwk);
  if (!key || key.alg !== header.alg) return null;
  const algorithm = key.alg === "EdDSA" ? { name: "Ed25519" } : { name: "ECDSA", hash: "SHA-256" };
  let ok = false;
  try {
    ok = await crypto.subtle.verify(algorithm, key.key, b64urlBytes(parts[2]), enc.encode(`${parts[0]}.${parts[1]}`));
  } catch { ok = false; }
  if (!ok) return null;
  try { return { header, claims: b64urlJson(parts[1]) }; } catch { return null; }
}

// Keep a freshly downloaded bundle (checked against the keys it carries, so a damaged copy is never kept).
export async function saveBundle(jws) {
  const payload = b64urlJson(jws.split(".")[1]);
  const checked = await verifyJws(jws, payload.code_keys, "cj-offline-bundle+jwt");
  if (!checked) throw new Error("离线包签名无效 · The offline bundle's signature does not verify");
  await tx("bundle", "readwrite", (s) => s.put({ jws, payload }, "current"));
  return payload;
}

export async function loadBundle() {
  const stored = await tx("bundle", "readonly", (s) => s.get("current"));
  return stored ? stored.payload : null;
}

// ---- deciding a code offline --------------------------------------------------------------

const shanghaiDay = (ms) => new Date(ms + 8 * 3600_000).toISOString().slice(0, 10);
const MESSAGES = {
  accepted_offline: ["离线核验通过，联网后上传核对", "Accepted offline: checked again on upload"],
  no_bundle: ["没有可用的离线包，请联网后再试", "No offline bundle: connect to the network first"],
  bundle_expired: ["离线包已过期，请联网更新", "The offline bundle has expired: connect to refresh it"],
  offline_code_unsupported: ["离线时只能核验崇军码", "Only 崇军码 can be checked offline"],
  invalid_code: ["无效的码，请让持码人刷新后重试", "Invalid code"],
  expired: ["码已过期，请让持码人刷新", "Code expired"],
  replayed: ["该码已使用，请让持码人刷新", "Code already used"],
  offline_budget_exceeded: ["已达离线核验额度，请联网后核验", "Offline budget reached: scan again when online"],
  wrong_venue: ["本场馆不提供该项优待", "Benefit not offered at this venue"],
  too_many_companions: ["同行人数超过该项优待允许的人数", "More companions than the benefit allows"],
  choose_benefit: ["持码人在本场馆有多项优待，请选择一项", "Several benefits apply here: choose one"],
};

function answer(reason, extra = {}) {
  const [message, message_en] = MESSAGES[reason];
  return { decision: reason === "accepted_offline" ? "accepted" : "rejected", reason, message, message_en, offline: true, ...extra };
}

const ref = (b) => ({ id: b.id, code: b.code, name_zh: b.name_zh, name_en: b.name_en });

// Decide one code without the network; an accept is kept in IndexedDB for the upload.
export async function decideOffline(code, { bundle, venueId, benefitId, companions, now = Date.now() }) {
  if (!bundle) return answer("no_bundle");
  if (bundle.exp * 1000 <= now) return answer("bundle_expired");
  if (!code.startsWith("CJ1:")) return answer("offline_code_unsupported");
  const checked = await verifyJws(code.slice(4), bundle.code_keys, "cj-code+jwt");
  if (!checked) return answer("invalid_code");
  const c = checked.claims;
  const seconds = now / 1000;
  if (c.iss !== "cjmf" || c.aud !== "cjmf-merchant" || typeof c.jti !== "string" || typeof c.sub !== "string"
      || !Number.isInteger(c.iat) || !Number.isInteger(c.exp) || c.iat > seconds + LEEWAY_S) return answer("invalid_code");
  if (c.exp + LEEWAY_S < seconds) return answer("expired");
  const kept = await allDecisions();
  if (kept.some((d) => d.jti === c.jti)) return answer("replayed");
  const wanted = benefitId || c.bid || null;
  let benefit;
  if (wanted) {
    benefit = bundle.benefits.find((b) => b.id === wanted);
    if (!benefit) return answer("wrong_venue");
  } else if (bundle.benefits.length === 1) {
    benefit = bundle.benefits[0];
  } else if (bundle.benefits.length > 1) {
    return answer("choose_benefit", { choices: bundle.benefits.map(ref) });
  } else {
    return answer("wrong_venue");
  }
  if (companions > benefit.companions_max) {
    return answer("too_many_companions", { benefit: ref(benefit), companions_allowed: benefit.companions_max });
  }
  const hour = Math.floor(now / 3600_000);
  const day = shanghaiDay(now);
  const budget = bundle.budget;
  if (kept.filter((d) => d.hour === hour).length >= budget.accepts_per_hour
      || kept.filter((d) => d.sub === c.sub && d.day === day).length >= budget.accepts_per_person_day) {
    return answer("offline_budget_exceeded", { benefit: ref(benefit) });
  }
  const decision = {
    local_id: crypto.randomUUID(), code, venue_id: venueId, benefit_id: benefit.id, companions,
    decided_at: new Date(now).toISOString(), jti: c.jti, sub: c.sub, hour, day, outcome: null, reason: null,
  };
  await putDecision(decision);
  return answer("accepted_offline", {
    local_id: decision.local_id, benefit: ref(benefit), companions, companions_allowed: benefit.companions_max,
  });
}

// The upload body of pending decisions: only the fields the server takes.
export function uploadItems(decisions) {
  return decisions.map((d) => {
    const item = { local_id: d.local_id, code: d.code, venue_id: d.venue_id, companions: d.companions, decided_at: d.decided_at };
    if (d.benefit_id) item.benefit_id = d.benefit_id;
    return item;
  });
}

// Keep the server's answers; decisions older than two days are dropped once answered.
export async function keepResults(items) {
  const byId = new Map((await allDecisions()).map((d) => [d.local_id, d]));
  for (const item of items) {
    const d = byId.get(item.local_id);
    if (d) await putDecision({ ...d, outcome: item.outcome, reason: item.reason, message: item.message, redemption_id: item.redemption_id || null });
  }
  const old = Date.now() - 2 * 86400_000;
  for (const d of byId.values()) if (d.outcome && Date.parse(d.decided_at) < old) await deleteDecision(d.local_id);
}
