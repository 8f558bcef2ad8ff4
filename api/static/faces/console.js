// The bureau and merchant console (/console). Plain ES module, no build step.
//
// Session: the staff/admin login of the API (POST /v1/auth/staff, with TOTP when the account has
// it). Tokens are kept in sessionStorage (gone with the tab, never localStorage) and sent as a
// bearer header, so no cookie carries the session and there is nothing for CSRF to ride on. The
// access token is refreshed before it expires; after IDLE_MINUTES without a key or a click the
// session is ended (logout revokes the refresh token family) and the login form is shown.
//
// Everything the server stored (names, comments, reasons) is put on the page as text nodes, never
// as HTML.

const SESSION = "chongjun.console";
const IDLE_MINUTES = 15;
const root = document.getElementById("root");

// ---- DOM helper ---------------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const bi = (zh, en) => [zh, " ", h("span", { class: "en" }, en)];
const fmtTime = (iso) => (iso ? new Date(iso).toLocaleString("zh-CN", { hour12: false, timeZone: "Asia/Shanghai" }) : "—");
const yuan = (fen) => `¥${(fen / 100).toFixed(2)}`;

function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2)}`;
  input.id = id;
  return h("div", {}, h("label", { for: id }, ...label), input, hint ? h("p", { class: "muted" }, hint) : null);
}

function table(columns, rows, empty = "暂无数据 · Nothing yet") {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  // Focusable so a keyboard user can scroll a wide table (axe: scrollable-region-focusable).
  return h("div", { class: "tablewrap", tabindex: "0", role: "region", "aria-label": "表格 table" }, h("table", {},
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, ...bi(...c.title))))),
    h("tbody", {}, rows.map((row) => h("tr", {}, columns.map((c) => h("td", {}, c.cell(row))))))));
}

const badge = (text) => h("span", { class: `badge ${text}` }, text);

// ---- session ------------------------------------------------------------------------------

let session = JSON.parse(sessionStorage.getItem(SESSION) || "null");
let refreshTimer = null;
let idleTimer = null;

function claimsOf(jwt) {
  const part = (i) => JSON.parse(atob(jwt.split(".")[i].replace(/-/g, "+").replace(/_/g, "/")));
  const header = part(0);
  const claims = part(1);
  return { kind: header.typ === "cj-staff+jwt" ? "staff" : "admin", role: claims.role, district: claims.dst, merchant: claims.mid, exp: claims.exp };
}

function keep(tokens) {
  session = { ...tokens, who: claimsOf(tokens.access_token), username: tokens.username || session?.username };
  sessionStorage.setItem(SESSION, JSON.stringify(session));
  scheduleRefresh();
}

function scheduleRefresh() {
  clearTimeout(refreshTimer);
  const ms = session.who.exp * 1000 - Date.now() - 60_000;
  refreshTimer = setTimeout(refresh, Math.max(ms, 1_000));
}

let refreshing = null;
function refresh() {
  // One refresh at a time: a rotated refresh token sent twice would end the session (reuse).
  refreshing = refreshing || doRefresh().finally(() => { refreshing = null; });
  return refreshing;
}

async function doRefresh() {
  const current = session;
  if (!current) return;
  const response = await fetch("/v1/auth/refresh", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ refresh_token: current.refresh_token }),
  }).catch(() => null);
  if (session !== current) return;  // ended (idle, logout) while the refresh was under way
  if (response && response.ok) keep({ ...(await response.json()), username: current.username });
  else end("会话已过期，请重新登录 · Session expired, log in again");
}

async function end(message) {
  const old = session;
  session = null;
  sessionStorage.removeItem(SESSION);
  clearTimeout(refreshTimer);
  clearTimeout(idleTimer);
  if (old) {
    fetch("/v1/auth/logout", {
      method: "POST", headers: { "Content-Type": "application/json", Authorization: `Bearer ${old.access_token}` },
      body: JSON.stringify({ refresh_token: old.refresh_token }),
    }).catch(() => {});
  }
  renderLogin(message);
}

function touch() {
  clearTimeout(idleTimer);
  if (session) idleTimer = setTimeout(() => end(`${IDLE_MINUTES} 分钟无操作，已自动退出 · Logged out after ${IDLE_MINUTES} idle minutes`), IDLE_MINUTES * 60_000);
}
for (const type of ["keydown", "pointerdown"]) document.addEventListener(type, touch, { passive: true });

class Problem extends Error {
  constructor(status, body) {
    super(body.detail || body.title || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function api(path, { method = "GET", json, body, headers = {}, raw = false } = {}) {
  const init = { method, headers: { ...headers } };
  if (session) init.headers.Authorization = `Bearer ${session.access_token}`;
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (body !== undefined) init.body = body;
  let response = await fetch(path, init);
  if (response.status === 401 && session && path !== "/v1/auth/staff") {
    await refresh();
    if (!session) throw new Problem(401, { title: "会话已过期 Session expired" });
    init.headers.Authorization = `Bearer ${session.access_token}`;
    response = await fetch(path, init);
  }
  if (raw && response.ok) return response;
  const data = response.headers.get("content-type")?.includes("json") ? await response.json() : {};
  if (!response.ok) throw new Problem(response.status, data);
  return data;
}

function problemBox(err) {
  const lines = (err.body?.errors || []).map((e) => h("li", {}, h("code", {}, e.path), " ", e.message));
  return h("div", { class: "error", role: "alert" }, h("strong", {}, err.message), lines.length ? h("ul", {}, lines) : null);
}

// ---- menus by role ------------------------------------------------------------------------

const PAGES = {
  dashboard: { title: ["概览", "Dashboard"], render: dashboard },
  benefits: { title: ["优待项目", "Benefits"], render: benefits },
  merchants: { title: ["商户", "Merchants"], render: merchantsPage },
  venues: { title: ["场馆", "Venues"], render: venuesPage },
  devices: { title: ["设备", "Devices"], render: devicesPage },
  staff: { title: ["工作人员", "Staff"], render: staffPage },
  roster: { title: ["名册导入", "Roster import"], render: rosterPage },
  ratings: { title: ["差评处理", "差评 cases"], render: ratingsPage },
  ledger: { title: ["核验记录", "Ledger"], render: ledgerPage },
  daily: { title: ["日报", "Daily report"], render: dailyPage },
  statements: { title: ["月结单", "Statements"], render: statementsPage },
};

function menuFor(who) {
  if (who.kind === "staff") return ["ledger", "daily", "statements", "devices"];
  if (who.role === "city") return ["dashboard", "benefits", "merchants", "venues", "devices", "staff", "roster", "ratings"];
  if (who.role === "district") return ["dashboard", "benefits", "merchants", "venues", "devices", "staff", "ratings"];
  return ["dashboard", "benefits", "merchants", "venues", "devices", "staff", "ratings"];  // auditor: reads only
}

const canWrite = () => session.who.kind === "admin" && session.who.role !== "auditor";
const isCity = () => session.who.kind === "admin" && session.who.role === "city";

function roleLabel(who) {
  if (who.kind === "staff") return `商户工作人员 merchant ${who.role || ""}`;
  return { city: "市局管理员 city admin", district: `区局管理员 district admin ${who.district || ""}`, auditor: "审计员 auditor" }[who.role] || who.role;
}

// ---- shell --------------------------------------------------------------------------------

function currentPage() {
  const name = location.pathname.replace(/^\/console\/?/, "").split("/")[0];
  const menu = menuFor(session.who);
  return menu.includes(name) ? name : menu[0];
}

function go(name) {
  history.pushState(null, "", `/console/${name}`);
  renderShell();
}
window.addEventListener("popstate", () => session && renderShell());

async function renderShell() {
  const name = currentPage();
  const menu = menuFor(session.who);
  document.getElementById("who").textContent = `${session.username || ""} · ${roleLabel(session.who)}`;
  document.getElementById("logout").hidden = false;
  const main = h("main", { id: "main", tabindex: "-1" });
  const nav = h("nav", { "aria-label": "菜单 Menu" }, menu.map((key) => h("a", {
    href: `/console/${key}`, "aria-current": key === name ? "page" : null,
    onclick: (event) => { event.preventDefault(); go(key); },
  }, ...bi(...PAGES[key].title))));
  root.replaceChildren(h("div", { class: "layout" }, nav, main));
  document.title = `${PAGES[name].title[0]} · 崇军魔方管理后台`;
  main.append(h("h1", {}, ...bi(...PAGES[name].title)));
  try {
    await PAGES[name].render(main);
  } catch (err) {
    main.append(problemBox(err));
  }
  main.dataset.ready = name;
}

function renderLogin(message) {
  document.getElementById("who").textContent = "";
  document.getElementById("logout").hidden = true;
  const username = h("input", { name: "username", autocomplete: "username", required: true });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const totp = h("input", { name: "totp", inputmode: "numeric", autocomplete: "one-time-code", pattern: "[0-9]{6}", maxlength: 6 });
  // An initial password (set by an admin) is replaced before the first login (等保, issue 17).
  const newPassword = h("input", { name: "new_password", type: "password", autocomplete: "new-password", minlength: 12 });
  const newField = field(bi("新密码", "New password"), newPassword, "至少 12 位，含大小写字母、数字、符号中的三类 · 12+ characters, three of: a-z, A-Z, 0-9, symbols");
  newField.hidden = true;
  const status = h("div", { role: "status" }, message ? h("p", { class: "ok-note" }, message) : null);
  const form = h("form", { class: "card stack", onsubmit: async (event) => {
    event.preventDefault();
    status.replaceChildren();
    const body = { username: username.value.trim(), password: password.value };
    if (totp.value) body.totp = totp.value.trim();
    try {
      if (!newField.hidden) {
        await api("/v1/auth/password", { method: "POST", json: { ...body, new_password: newPassword.value } });
        body.password = newPassword.value;
        delete body.totp;  // a TOTP step is good once; the login below asks again if it must
      }
      const tokens = await api("/v1/auth/staff", { method: "POST", json: body });
      keep({ ...tokens, username: body.username });
      touch();
      renderShell();
    } catch (err) {
      const slug = String(err.body?.type || "").split(":").pop();
      const text = {
        "totp-required": "请输入动态验证码 (TOTP) · Enter the 6-digit code from your authenticator",
        "invalid-credentials": "用户名、密码或验证码错误 · Wrong username, password or code",
        "login-throttled": "尝试次数过多，请稍后再试 · Too many attempts, try later",
        "password-change-required": "初始密码须先修改，请设置新密码 · Choose a new password to replace the initial one",
        "weak-password": err.body?.detail || err.message,
        "password-reused": "不能使用最近用过的密码 · That password was used recently",
      }[slug] || err.message;
      status.replaceChildren(h("p", { class: "error", role: "alert" }, text));
      if (slug === "totp-required") totp.focus();
      if (slug === "password-change-required") { newField.hidden = false; newPassword.required = true; newPassword.focus(); }
    }
  } },
    h("h1", {}, ...bi("登录", "Log in")),
    field(bi("用户名", "Username"), username),
    field(bi("密码", "Password"), password),
    field(bi("动态验证码", "TOTP code"), totp, "已启用双因素认证的账号必填 · required when the account has TOTP"),
    newField,
    h("button", { type: "submit" }, ...bi("登录", "Log in")),
    status);
  root.replaceChildren(h("main", { class: "login" }, form));
  username.focus();
}

document.getElementById("logout").addEventListener("click", () => end("已退出 · Logged out"));

// ---- dashboard ----------------------------------------------------------------------------

async function dashboard(main) {
  const [active, all, open] = await Promise.all([
    api("/v1/admin/benefits?status=active&limit=100"),
    api("/v1/admin/benefits?limit=100"),
    api("/v1/admin/ratings?status=open&limit=100"),
  ]);
  const byDomain = {};
  for (const b of active.items) byDomain[b.domain] = (byDomain[b.domain] || 0) + 1;
  const max = Math.max(1, ...Object.values(byDomain));
  const domainNames = { culture: "文化 culture", tourism: "旅游 tourism", transit: "交通 transit", other: "其他 other" };
  main.append(
    h("div", { class: "grid2" },
      h("section", { class: "card", "aria-labelledby": "k1" },
        h("h2", { id: "k1" }, ...bi("优待项目", "Benefits")),
        h("p", {}, `${active.items.length} 项在用 active · ${all.items.length}${all.next_cursor ? "+" : ""} 项合计 in all`),
        h("div", { class: "bars", role: "img", "aria-label": "在用优待项目按领域 active benefits by domain" },
          Object.entries(byDomain).map(([d, n]) => h("div", { class: "b" }, h("span", {}, domainNames[d] || d),
            h("span", { class: "fill", style: null, "data-w": n }), h("span", {}, String(n)))))),
      h("section", { class: "card", "aria-labelledby": "k2" },
        h("h2", { id: "k2" }, ...bi("差评待处理", "Open 差评 cases")),
        h("p", { class: "big-number" }, `${open.items.length}${open.next_cursor ? "+" : ""}`),
        h("a", { href: "/console/ratings", onclick: (e) => { e.preventDefault(); go("ratings"); } }, ...bi("去处理", "Handle them")))),
    h("p", { class: "muted" }, "运营统计（免申即享覆盖、按日按区核验量、拒绝原因）在 /v1/admin/stats 上线后显示于此。 "
      + "Operating statistics appear here once /v1/admin/stats is available."));
  // Bar widths through CSSOM (no inline style attribute, which the page policy forbids).
  for (const bar of main.querySelectorAll(".fill")) bar.style.width = `${(Number(bar.dataset.w) / max) * 100}%`;
}

// ---- benefits -----------------------------------------------------------------------------

const SAMPLE_RULE = { op: "all", all: [{ op: "has_category", category: "DISABLED_SERVICEMAN" }, { op: "disability_grade", min: 1, max: 4 }] };

async function benefits(main) {
  const list = await api("/v1/admin/benefits?limit=100");
  const listBox = h("section", { class: "card", "aria-labelledby": "bl" }, h("h2", { id: "bl" }, ...bi("目录", "Catalog")),
    table([
      { title: ["代码", "Code"], cell: (b) => b.code },
      { title: ["名称", "Name"], cell: (b) => [b.name_zh, h("br"), h("span", { class: "en" }, b.name_en)] },
      { title: ["领域", "Domain"], cell: (b) => b.domain },
      { title: ["状态", "Status"], cell: (b) => badge(b.status) },
      { title: ["版本", "Version"], cell: (b) => String(b.version) },
    ], [...list.items].sort((a, b) => a.code.localeCompare(b.code, "en", { numeric: true }))));
  if (list.next_cursor) listBox.append(h("p", { class: "muted" }, "仅显示前 100 项 · first 100 shown"));
  main.append(isCity() ? editor() : null, listBox);
}

function editor() {
  const code = h("input", { name: "code", required: true, pattern: "[A-Z][A-Z0-9_-]{0,31}", value: "X1" });
  const nameZh = h("input", { name: "name_zh", required: true });
  const nameEn = h("input", { name: "name_en", required: true });
  const domain = h("select", { name: "domain" }, ["culture", "tourism", "transit", "other"].map((d) => h("option", { value: d }, d)));
  const value = h("select", { name: "value" }, h("option", { value: "free" }, "免费 free"), h("option", { value: "priority" }, "优先 priority"));
  const rule = h("textarea", { name: "rule", rows: 8, spellcheck: "false" });
  rule.value = JSON.stringify(SAMPLE_RULE, null, 2);
  const categories = h("input", { name: "sample_categories", value: "VETERAN,DISABLED_SERVICEMAN" });
  const grade = h("input", { name: "sample_grade", type: "number", min: 1, max: 10, value: 2 });
  const preview = h("div", { id: "rule-preview", "aria-live": "polite" });
  const result = h("div", { role: "status" });

  const draft = () => {
    let parsedRule;
    try { parsedRule = JSON.parse(rule.value); } catch (err) { throw new Problem(422, { title: "规则不是有效的 JSON · The rule is not valid JSON", errors: [{ path: "$.rule", message: err.message }] }); }
    return { code: code.value.trim(), name_zh: nameZh.value.trim() || "（未命名）", name_en: nameEn.value.trim() || "(unnamed)",
      domain: domain.value, value: { kind: value.value }, rule: parsedRule, status: "active" };
  };
  let timer = null;
  const livePreview = () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      try {
        const person = { categories: categories.value.split(/[,\s|]+/).filter(Boolean) };
        if (grade.value) person.disability_grade = Number(grade.value);
        const p = await api("/v1/admin/benefits/preview", { method: "POST", json: { benefit: draft(), person } });
        const d = p.decision;
        preview.replaceChildren(
          h("p", {}, h("strong", {}, "规则 Rule: "), p.rule_summary_zh, " · ", h("span", { class: "en" }, p.rule_summary_en)),
          h("p", { class: d.eligible ? "ok-note" : "error" },
            h("strong", {}, d.eligible ? "样例人员符合 · the sample person is eligible" : "样例人员不符合 · the sample person is not eligible"),
            h("br"), d.message_zh, h("br"), h("span", {}, d.message_en)),
          h("ul", {}, p.clauses.map((c) => h("li", {}, c.held ? "✓ " : "✗ ", h("code", {}, c.path), " ", c.text_zh, " · ", c.text_en))));
      } catch (err) {
        preview.replaceChildren(problemBox(err));
      }
    }, 250);
  };
  for (const el of [code, nameZh, nameEn, domain, value, rule, categories, grade]) el.addEventListener("input", livePreview);

  const form = h("form", { class: "card", "aria-labelledby": "be", onsubmit: async (event) => {
    event.preventDefault();
    result.replaceChildren();
    try {
      const made = await api("/v1/admin/benefits", { method: "POST", json: draft() });
      result.replaceChildren(h("p", { class: "ok-note" }, `已创建 created: ${made.code} ${made.name_zh} (v${made.version})`));
      setTimeout(() => renderShell(), 0);
    } catch (err) {
      result.replaceChildren(problemBox(err));
    }
  } },
    h("h2", { id: "be" }, ...bi("新建优待项目", "New benefit")),
    h("div", { class: "grid2" },
      h("div", {}, field(bi("代码", "Code"), code), field(bi("中文名称", "Name (zh)"), nameZh), field(bi("英文名称", "Name (en)"), nameEn),
        field(bi("领域", "Domain"), domain), field(bi("优待内容", "Value"), value),
        field(bi("资格规则 (JSON)", "Eligibility rule"), rule, "例 e.g. {\"op\": \"has_category\", \"category\": \"VETERAN\"}")),
      h("div", {}, h("h3", {}, ...bi("预览（样例人员）", "Preview for a sample person")),
        field(bi("类别", "Categories"), categories), field(bi("残疾等级", "Disability grade"), grade), preview)),
    h("button", { type: "submit" }, ...bi("创建", "Create")), result);
  livePreview();
  return form;
}

// ---- merchants, venues, devices, staff ----------------------------------------------------

async function merchantsPage(main) {
  const list = await api("/v1/admin/merchants/?limit=100");
  if (canWrite()) {
    const inputs = { name: h("input", { required: true }), credit_code: h("input", { required: true }),
      district: h("input", { required: true, value: session.who.district || "310101" }),
      contact_name: h("input", { required: true }), contact_phone: h("input", { required: true }) };
    const result = h("div", { role: "status" });
    main.append(h("form", { class: "card", onsubmit: async (e) => {
      e.preventDefault();
      try {
        const body = Object.fromEntries(Object.entries(inputs).map(([k, el]) => [k, el.value.trim()]));
        await api("/v1/admin/merchants/", { method: "POST", json: body });
        renderShell();
      } catch (err) { result.replaceChildren(problemBox(err)); }
    } }, h("h2", {}, ...bi("新增商户", "New merchant")),
    h("div", { class: "row" }, field(bi("名称", "Name"), inputs.name), field(bi("统一社会信用代码", "Credit code"), inputs.credit_code),
      field(bi("区划代码", "District"), inputs.district), field(bi("联系人", "Contact"), inputs.contact_name), field(bi("电话", "Phone"), inputs.contact_phone)),
    h("button", { type: "submit" }, ...bi("创建", "Create")), result));
  }
  main.append(h("section", { class: "card" }, table([
    { title: ["名称", "Name"], cell: (m) => m.name },
    { title: ["区", "District"], cell: (m) => m.district },
    { title: ["状态", "Status"], cell: (m) => badge(m.status) },
    { title: ["操作", "Actions"], cell: (m) => canWrite() ? h("button", { type: "button", class: "secondary small", onclick: async () => {
      await api(`/v1/admin/merchants/${m.id}`, { method: "PATCH", json: { status: m.status === "active" ? "suspended" : "active" } }).catch((err) => main.append(problemBox(err)));
      renderShell();
    } }, m.status === "active" ? "暂停 Suspend" : "恢复 Activate") : "" },
  ], list.items)));
}

async function venueOptions() {
  const path = session.who.kind === "staff" ? "/v1/merchant/venues?limit=100" : "/v1/admin/venues/?limit=100";
  return (await api(path)).items;
}

async function venuesPage(main) {
  const venues = await venueOptions();
  if (canWrite()) {
    const merchants = (await api("/v1/admin/merchants/?limit=100")).items;
    const inputs = {
      merchant_id: h("select", {}, merchants.map((m) => h("option", { value: m.id }, m.name))),
      name_zh: h("input", { required: true }), address: h("input", { required: true }),
      district: h("input", { required: true, value: session.who.district || "310101" }),
      domain: h("select", {}, ["culture", "tourism", "transit", "other"].map((d) => h("option", { value: d }, d))),
    };
    const result = h("div", { role: "status" });
    main.append(h("form", { class: "card", onsubmit: async (e) => {
      e.preventDefault();
      try {
        await api("/v1/admin/venues/", { method: "POST", json: Object.fromEntries(Object.entries(inputs).map(([k, el]) => [k, el.value.trim()])) });
        renderShell();
      } catch (err) { result.replaceChildren(problemBox(err)); }
    } }, h("h2", {}, ...bi("新增场馆", "New venue")),
    h("div", { class: "row" }, field(bi("商户", "Merchant"), inputs.merchant_id), field(bi("名称", "Name"), inputs.name_zh),
      field(bi("地址", "Address"), inputs.address), field(bi("区划代码", "District"), inputs.district), field(bi("领域", "Domain"), inputs.domain)),
    h("button", { type: "submit" }, ...bi("创建", "Create")), result));
  }
  main.append(h("section", { class: "card" }, table([
    { title: ["名称", "Name"], cell: (v) => v.name_zh },
    { title: ["区", "District"], cell: (v) => v.district },
    { title: ["领域", "Domain"], cell: (v) => v.domain },
    { title: ["状态", "Status"], cell: (v) => badge(v.status) },
  ], venues)));
}

function b64url(text) {
  const bytes = new TextEncoder().encode(text);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function showSetup(box, made, venue) {
  // Shown once: the secret is not kept anywhere in the page after it is navigated away from.
  const payload = { kind: "chongjun-device-setup", v: 1, api: location.origin, device_id: made.device_id,
    secret: made.secret, venue_id: venue.id, venue: venue.name_zh };
  const link = `${location.origin}/scan#setup=${b64url(JSON.stringify(payload))}`;
  const png = await api(made.setup_qr_url, { raw: true });
  const img = h("img", { class: "qr", alt: "设备设置码 device setup QR", src: URL.createObjectURL(await png.blob()) });
  box.replaceChildren(h("div", { class: "card", id: "setup-once" },
    h("h2", {}, ...bi("设备设置码（仅显示一次）", "Setup code (shown once)")),
    h("p", {}, "用闸机扫描此码，或在闸机浏览器中打开下面的链接。离开本页后无法再次查看，需重置密钥。"),
    h("p", { class: "en" }, "Scan it with the gate, or open the link on it. It cannot be shown again; roll the secret for a new one."),
    img, h("p", {}, h("a", { href: link, id: "setup-link", target: "_blank", rel: "noopener" }, ...bi("设置链接", "Setup link"))),
    h("p", { class: "muted" }, `device_id ${made.device_id}`)));
}

async function devicesPage(main) {
  const base = session.who.kind === "staff" ? "/v1/merchant/devices" : "/v1/admin/devices";
  const venues = await venueOptions();
  const devices = (await api(`${base}/?limit=100`)).items;
  const venueName = Object.fromEntries(venues.map((v) => [v.id, v]));
  const once = h("div", { "aria-live": "polite" });
  const manager = session.who.kind === "staff" ? session.who.role === "manager" : canWrite();
  if (manager) {
    const venue = h("select", {}, venues.map((v) => h("option", { value: v.id }, v.name_zh)));
    const label = h("input", { required: true, value: "闸机 1" });
    main.append(h("form", { class: "card", onsubmit: async (e) => {
      e.preventDefault();
      try {
        const made = await api(`${base}/`, { method: "POST", json: { venue_id: venue.value, label: label.value.trim() } });
        await showSetup(once, made, venueName[venue.value]);
      } catch (err) { once.replaceChildren(problemBox(err)); }
    } }, h("h2", {}, ...bi("新增设备", "New device")),
    h("div", { class: "row" }, field(bi("场馆", "Venue"), venue), field(bi("名称", "Label"), label)),
    h("button", { type: "submit" }, ...bi("创建并显示设置码", "Create and show the setup code"))));
  }
  main.append(once, h("section", { class: "card" }, table([
    { title: ["名称", "Label"], cell: (d) => d.label },
    { title: ["场馆", "Venue"], cell: (d) => venueName[d.venue_id]?.name_zh || d.venue_id },
    { title: ["状态", "Status"], cell: (d) => badge(d.status) },
    { title: ["最近取令牌", "Last token"], cell: (d) => fmtTime(d.last_token_at) },
    { title: ["操作", "Actions"], cell: (d) => manager && d.status !== "revoked" ? [
      h("button", { type: "button", class: "secondary small", onclick: async () => {
        try {
          const made = await api(`${base}/${d.id}/secret`, { method: "POST" });
          await showSetup(once, made, venueName[d.venue_id]);
        } catch (err) { once.replaceChildren(problemBox(err)); }
      } }, "重置密钥 Roll"), " ",
      h("button", { type: "button", class: "secondary small", onclick: async () => {
        if (!window.confirm(`停用设备 ${d.label}？ Revoke this device?`)) return;
        await api(`${base}/${d.id}/revoke`, { method: "POST" }).catch((err) => once.replaceChildren(problemBox(err)));
        renderShell();
      } }, "停用 Revoke")] : "" },
  ], devices)));
}

async function staffPage(main) {
  const list = await api("/v1/admin/staff/?limit=100");
  if (canWrite()) {
    const merchants = (await api("/v1/admin/merchants/?limit=100")).items;
    const merchant = h("select", {}, merchants.map((m) => h("option", { value: m.id }, m.name)));
    const username = h("input", { required: true, autocomplete: "off" });
    const password = h("input", { type: "password", required: true, minlength: 12, autocomplete: "new-password" });
    const role = h("select", {}, h("option", { value: "clerk" }, "clerk 收银/检票"), h("option", { value: "manager" }, "manager 经理"));
    const result = h("div", { role: "status" });
    main.append(h("form", { class: "card", onsubmit: async (e) => {
      e.preventDefault();
      try {
        await api("/v1/admin/staff/", { method: "POST", json: { merchant_id: merchant.value, username: username.value.trim(), password: password.value, role: role.value } });
        renderShell();
      } catch (err) { result.replaceChildren(problemBox(err)); }
    } }, h("h2", {}, ...bi("新增工作人员", "New staff account")),
    h("div", { class: "row" }, field(bi("商户", "Merchant"), merchant), field(bi("用户名", "Username"), username),
      field(bi("初始密码", "Password"), password), field(bi("角色", "Role"), role)),
    h("button", { type: "submit" }, ...bi("创建", "Create")), result));
  }
  main.append(h("section", { class: "card" }, table([
    { title: ["用户名", "Username"], cell: (s) => s.username },
    { title: ["角色", "Role"], cell: (s) => s.role || "" },
    { title: ["状态", "Status"], cell: (s) => badge(s.disabled ? "disabled" : "active") },
    { title: ["操作", "Actions"], cell: (s) => canWrite() ? h("button", { type: "button", class: "secondary small", onclick: async () => {
      await api(`/v1/admin/staff/${s.id}`, { method: "PATCH", json: { disabled: !s.disabled } }).catch((err) => main.append(problemBox(err)));
      renderShell();
    } }, s.disabled ? "启用 Enable" : "停用 Disable") : "" },
  ], list.items)));
}

// ---- roster -------------------------------------------------------------------------------

function rosterPage(main) {
  const file = h("input", { type: "file", accept: ".csv,text/csv" });
  const text = h("textarea", { rows: 6, spellcheck: "false", placeholder: "id_number,name,categories,disability_grade,disability_cause,card_kind,card_status,card_province,district,birth_date" });
  const validOnly = h("input", { type: "checkbox" });
  const report = h("div", { id: "roster-report", "aria-live": "polite" });
  const show = (r, rejected) => {
    report.replaceChildren(h("div", { class: rejected ? "error" : "ok-note" },
      h("strong", {}, rejected ? "有错误行，未导入任何数据 · Invalid lines: nothing was imported" : "已导入 · Imported"),
      h("p", {}, `读取 ${r.lines} 行 lines · 有效 ${r.valid} valid · 拒绝 ${r.rejected} rejected · 新增 ${r.inserted} inserted · 更新 ${r.updated} updated · 未变 ${r.unchanged} unchanged`)),
    table([
      { title: ["行号", "Line"], cell: (e) => String(e.line) },
      { title: ["字段", "Field"], cell: (e) => e.field },
      { title: ["问题", "Problem"], cell: (e) => e.message },
      { title: ["证件号（脱敏）", "ID (masked)"], cell: (e) => e.id_masked || "" },
    ], r.errors, "没有错误行 · No invalid lines"));
  };
  main.append(h("form", { class: "card", onsubmit: async (e) => {
    e.preventDefault();
    const body = file.files.length ? file.files[0] : text.value;
    try {
      const r = await api(`/v1/admin/people/import${validOnly.checked ? "?valid_only=true" : ""}`, { method: "POST", body, headers: { "Content-Type": "text/csv" } });
      show(r, false);
    } catch (err) {
      if (err.body?.report) show(err.body.report, true);
      else report.replaceChildren(problemBox(err));
    }
  } },
  h("p", {}, "整份导入：有任何错误行则全部不导入（可选只导入有效行）。 All or nothing unless \u201conly valid lines\u201d is ticked."),
  field(bi("CSV 文件", "CSV file"), file), field(bi("或粘贴 CSV", "or paste CSV"), text),
  h("label", { class: "check" }, validOnly, ...bi("只导入有效行", "Import only the valid lines")),
  h("button", { type: "submit" }, ...bi("导入", "Import"))), report);
}

// ---- 差评 -----------------------------------------------------------------------------------

async function ratingsPage(main) {
  const status = new URLSearchParams(location.search).get("status") === "closed" ? "closed" : "open";
  const list = await api(`/v1/admin/ratings?status=${status}&limit=100`);
  const answer = session.who.role !== "auditor";
  main.append(h("p", {}, h("a", { href: `/console/ratings?status=${status === "open" ? "closed" : "open"}`, onclick: (e) => {
    e.preventDefault(); history.pushState(null, "", `/console/ratings?status=${status === "open" ? "closed" : "open"}`); renderShell();
  } }, status === "open" ? "查看已处理 · Show closed" : "查看待处理 · Show open")));
  if (!list.items.length) main.append(h("p", { class: "muted" }, "没有差评 · No cases"));
  for (const c of list.items) {
    const reply = h("textarea", { rows: 2, maxlength: 1000, required: true });
    const result = h("div", { role: "status" });
    main.append(h("article", { class: "card case", "data-case": c.id },
      h("p", {}, h("strong", {}, "★".repeat(c.stars) + "☆".repeat(5 - c.stars)), " ", c.benefit_code, " · ", c.venue?.name_zh || "", " · ", fmtTime(c.at), " ", badge(c.status)),
      h("p", { class: "comment" }, c.comment || "（无评论 no comment）"),
      c.reply ? h("p", { class: "ok-note" }, "答复 Reply: ", c.reply) : null,
      c.status === "open" && answer ? h("form", { onsubmit: async (e) => {
        e.preventDefault();
        try {
          await api(`/v1/admin/ratings/${c.id}/reply`, { method: "POST", json: { reply: reply.value.trim() } });
          renderShell();
        } catch (err) { result.replaceChildren(problemBox(err)); }
      } }, field(bi("答复", "Reply"), reply), h("button", { type: "submit" }, ...bi("答复并结案", "Reply and close")), result) : null));
  }
}

// ---- merchant staff: ledger, daily report, statements -------------------------------------

async function download(path, name) {
  const response = await api(path, { raw: true, headers: { Accept: "text/csv" } });
  const a = h("a", { href: URL.createObjectURL(await response.blob()), download: name });
  document.body.append(a);
  a.click();
  a.remove();
}

async function ledgerPage(main) {
  const list = await api("/v1/merchant/redemptions?limit=50");
  main.append(h("p", {}, h("button", { type: "button", class: "secondary", onclick: () => download("/v1/merchant/redemptions?limit=100", "redemptions.csv") }, ...bi("下载 CSV", "Download CSV"))),
    h("section", { class: "card" }, table([
      { title: ["时间", "Time"], cell: (r) => fmtTime(r.at) },
      { title: ["项目", "Benefit"], cell: (r) => r.benefit_code || "" },
      { title: ["结果", "Result"], cell: (r) => badge(r.result) },
      { title: ["原因", "Reason"], cell: (r) => r.reason || "" },
      { title: ["同行", "Companions"], cell: (r) => String(r.companions) },
    ], list.items)));
}

const shanghaiToday = () => new Date(Date.now() + 8 * 3600_000).toISOString().slice(0, 10);

async function dailyPage(main) {
  const date = h("input", { type: "date", value: new URLSearchParams(location.search).get("date") || shanghaiToday() });
  const out = h("div", {});
  const load = async () => {
    try {
      const r = await api(`/v1/merchant/reports/daily?date=${date.value}`);
      out.replaceChildren(quiet(r.venues) || "", ...r.venues.filter((v) => v.lines.length || Object.keys(v.rejected).length).map((v) => h("section", { class: "card" },
        h("h2", {}, v.venue_name_zh, ` · 净 ${v.net_count} 人次 net · ${yuan(v.net_value_fen)}`),
        table([
          { title: ["项目", "Benefit"], cell: (l) => `${l.benefit_code} ${l.benefit_name_zh || ""}` },
          { title: ["核验", "Redemptions"], cell: (l) => String(l.redemptions) },
          { title: ["撤销", "Reversals"], cell: (l) => String(l.reversals) },
          { title: ["入场人数", "Admitted"], cell: (l) => String(l.net_admitted) },
        ], v.lines),
        Object.keys(v.rejected).length ? h("p", { class: "muted" }, "拒绝 refused: " + Object.entries(v.rejected).map(([k, n]) => `${k} ${n}`).join(" · ")) : null)));
    } catch (err) { out.replaceChildren(problemBox(err)); }
  };
  date.addEventListener("change", load);
  main.append(h("div", { class: "row" }, field(bi("日期", "Date"), date),
    h("button", { type: "button", class: "secondary", onclick: () => download(`/v1/merchant/reports/daily?date=${date.value}`, `daily-${date.value}.csv`) }, ...bi("下载 CSV", "Download CSV"))), out);
  await load();
}

// Venues with nothing in the period are counted, not listed one by one.
function quiet(venues) {
  const idle = venues.filter((v) => !v.lines.length).length;
  return idle ? h("p", { class: "muted" }, `另有 ${idle} 个场馆本期无核验 · ${idle} other venue(s) had no redemptions`) : null;
}

async function statementsPage(main) {
  const month = h("input", { type: "month", value: shanghaiToday().slice(0, 7) });
  const out = h("div", {});
  const load = async () => {
    try {
      const s = await api(`/v1/merchant/statements/${month.value}`);
      const st = s.statement;
      out.replaceChildren(h("section", { class: "card" },
        h("h2", {}, `${st.merchant_name} · ${st.month}`),
        h("p", {}, `净 ${st.net_count} 人次 net · ${yuan(st.net_value_fen)} · `, st.final ? badge("final 已结") : badge("open 未结")),
        h("p", { id: "seal-status", class: s.seal?.jws ? "ok-note" : "error" }, s.seal?.jws
          ? `已加盖电子印章 sealed: ${s.seal.alg} · ${s.seal.kid}（公钥 public key: ${s.seal.jwks_url}）`
          : "未盖章 not sealed"),
        quiet(st.venues),
        st.venues.filter((v) => v.lines.length).map((v) => h("div", {}, h("h3", {}, v.venue_name_zh), table([
          { title: ["项目", "Benefit"], cell: (l) => `${l.benefit_code} ${l.benefit_name_zh || ""}` },
          { title: ["净次数", "Net"], cell: (l) => String(l.net_count) },
          { title: ["金额", "Value"], cell: (l) => yuan(l.net_value_fen) },
        ], v.lines)))));
    } catch (err) { out.replaceChildren(problemBox(err)); }
  };
  month.addEventListener("change", load);
  main.append(h("div", { class: "row" }, field(bi("月份", "Month"), month),
    h("button", { type: "button", class: "secondary", onclick: () => download(`/v1/merchant/statements/${month.value}`, `statement-${month.value}.csv`) }, ...bi("下载 CSV", "Download CSV"))), out);
  await load();
}

// ---- start --------------------------------------------------------------------------------

if (session) {
  scheduleRefresh();
  touch();
  renderShell();
} else {
  renderLogin();
}
