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

import { columns, hbars } from "/faces/charts.js";

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

// A table; on a phone with `summary` (a row's one-line summary), a list of disclosures instead,
// each opening to the row's cells.
function table(columns, rows, empty = "暂无数据 · Nothing yet", { summary, keep } = {}) {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  if (summary && !wide()) {
    return summaryList(rows, summary, (row) => [h("dl", { class: "cells" },
      columns.map((c) => h("div", {}, h("dt", {}, ...bi(...c.title)), h("dd", {}, c.cell(row)))))]);
  }
  // Focusable so a keyboard user can scroll a wide table (axe: scrollable-region-focusable).
  // `keep`: a narrow table of figures stays a table on a phone (rows are not stacked).
  return h("div", { class: keep ? "tablewrap keep" : "tablewrap", tabindex: "0", role: "region", "aria-label": "表格 table" }, h("table", {},
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, ...bi(...c.title))))),
    h("tbody", {}, rows.map((row) => h("tr", {}, columns.map((c) => h("td", { "data-label": c.title[0] }, h("span", { class: "cell" }, c.cell(row)))))))));
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
  audit: { title: ["审计日志", "Audit log"], render: auditPage },
  ledger: { title: ["核验记录", "Ledger"], render: ledgerPage },
  daily: { title: ["日报", "Daily report"], render: dailyPage },
  statements: { title: ["月结单", "Statements"], render: statementsPage },
};

function menuFor(who) {
  if (who.kind === "staff") return ["ledger", "daily", "statements", "devices"];
  if (who.role === "city") return ["dashboard", "benefits", "merchants", "venues", "devices", "staff", "roster", "ratings", "audit"];
  if (who.role === "district") return ["dashboard", "benefits", "merchants", "venues", "devices", "staff", "ratings", "audit"];
  return ["dashboard", "benefits", "merchants", "venues", "devices", "staff", "ratings", "audit"];  // auditor: reads only
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
  const submit = h("button", { type: "submit" }, ...bi("登录", "Log in"));
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
      if (slug === "password-change-required") {
        newField.hidden = false; newPassword.required = true; newPassword.focus();
        submit.replaceChildren(...bi("修改密码并登录", "Change password and log in"));
      }
    }
  } },
    h("h1", {}, ...bi("登录", "Log in")),
    field(bi("用户名", "Username"), username),
    field(bi("密码", "Password"), password),
    field(bi("动态验证码", "TOTP code"), totp, "已启用双因素认证的账号必填 · required when the account has TOTP"),
    newField,
    submit,
    status);
  root.replaceChildren(h("main", { class: "login" }, form));
  username.focus();
}

document.getElementById("logout").addEventListener("click", () => end("已退出 · Logged out"));

// ---- dashboard ----------------------------------------------------------------------------

const DISTRICTS = {
  310101: "黄浦区", 310104: "徐汇区", 310105: "长宁区", 310106: "静安区", 310107: "普陀区", 310109: "虹口区",
  310110: "杨浦区", 310112: "闵行区", 310113: "宝山区", 310114: "嘉定区", 310115: "浦东新区", 310116: "金山区",
  310117: "松江区", 310118: "青浦区", 310120: "奉贤区", 310151: "崇明区",
};
const districtName = (code) => (DISTRICTS[code] ? `${DISTRICTS[code]} ${code}` : code || "—");
// The scan decision's reason codes (benefits.redemption.reasons), for the refusals chart.
const REASONS = {
  invalid_code: "无效的码", expired: "码已过期", replayed: "码已使用", not_enrolled: "未在名册中", not_eligible: "不符合条件",
  quota_exhausted: "次数已用完", venue_capacity_reached: "场馆名额已满", outside_window: "不在优待时段", benefit_inactive: "项目未开放",
  wrong_venue: "本场馆不提供", card_suspended: "优待证暂停或收回", too_many_companions: "同行人数超限", choose_benefit: "需选择项目",
};
const pct = (share) => (share === null || share === undefined ? "—" : `${(share * 100).toFixed(1)}%`);

function datesFrom(first, last) {
  const out = [];
  for (let d = new Date(`${first}T00:00:00Z`); d <= new Date(`${last}T00:00:00Z`); d.setUTCDate(d.getUTCDate() + 1)) out.push(d.toISOString().slice(0, 10));
  return out;
}

// A chart card: heading, the chart, and its figures as a table under a disclosure.
function chartCard(id, title, chart, figures, note) {
  return h("section", { class: "card chart-card", "aria-labelledby": id, "data-chart": id },
    h("h2", { id }, ...title), note ? h("p", { class: "muted" }, note) : null, chart,
    h("details", { class: "figures" }, h("summary", {}, ...bi("数据表", "Figures")), figures));
}

async function dashboard(main) {
  const params = new URLSearchParams(location.search);
  const district = session.who.role === "district";
  const query = new URLSearchParams();
  for (const key of ["from", "to", "district"]) if (params.get(key) && !(key === "district" && district)) query.set(key, params.get(key));
  const report = await api(`/v1/admin/stats${query.toString() ? `?${query}` : ""}`);
  const q = report.query;

  // Filters: the window and (for city admins and auditors) the district.
  const from = h("input", { type: "date", name: "from", value: q.date_from });
  const to = h("input", { type: "date", name: "to", value: q.date_to });
  const where = district
    ? h("input", { name: "district", value: districtName(q.district), readonly: true })
    : h("select", { name: "district" }, h("option", { value: "" }, "全市 whole city"),
      Object.keys(DISTRICTS).map((code) => h("option", { value: code, selected: q.district === code }, districtName(code))));
  const filters = h("form", { class: "card row filters", "aria-label": "筛选 filters", onsubmit: (e) => {
    e.preventDefault();
    const next = new URLSearchParams();
    if (from.value) next.set("from", from.value);
    if (to.value) next.set("to", to.value);
    if (!district && where.value) next.set("district", where.value);
    history.pushState(null, "", `/console/dashboard${next.toString() ? `?${next}` : ""}`);
    renderShell();
  } }, field(bi("起始日", "From"), from), field(bi("截止日", "To"), to),
    field(bi("区", "District"), where, district ? "区局管理员只看本区 · district admins see their district" : null),
    h("button", { type: "submit" }, ...bi("查看", "Show")));

  const t = report.totals;
  const r = report.ratings;
  const figure = (key, label, value, sub) => h("div", { class: "kpi", "data-kpi": key },
    h("span", { class: "kpi-label" }, ...label), h("span", { class: "kpi-value" }, String(value)), sub ? h("span", { class: "muted" }, sub) : null);
  const kpis = h("section", { class: "kpis", "aria-label": "主要指标 key figures" },
    figure("redemptions", bi("核验", "Redemptions"), t.redemptions, `撤销 ${t.reversals} reversed · 净 ${t.net} net`),
    figure("people", bi("使用人数", "People"), t.people, `同行 ${t.companions} companions`),
    figure("priority", bi("绿色通道", "Priority"), t.priority, pct(t.priority_share)),
    figure("open_cases", bi("差评待处理", "Open 差评"), r.open_cases, `超期 ${r.overdue_cases} overdue`),
    figure("ratings", bi("评价", "Ratings"), r.count, r.average === null ? "—" : `均分 ${r.average} avg · 差评 ${pct(r.low_share)}`));

  // 免申即享 reach: people eligible now (the last reach computation) and who used it in the window.
  const reach = report.by_benefit.filter((b) => (b.eligible || 0) > 0 || b.used > 0)
    .sort((a, b) => (b.eligible || 0) - (a.eligible || 0) || a.code.localeCompare(b.code, "en", { numeric: true }));
  const reachTop = reach.slice(0, 12);
  const reachNote = report.reach_computed_at
    ? `覆盖人数计算于 ${fmtTime(report.reach_computed_at)} · reach as of; 显示前 ${reachTop.length} / ${reach.length} 项`
    : "尚未计算覆盖人数（运行 ./dev stats refresh）· reach not computed yet: run ./dev stats refresh";
  const reachCard = chartCard("c-reach", bi("免申即享覆盖", "Reach of 免申即享"),
    reachTop.length ? hbars("免申即享覆盖：符合人数与使用人数 reach: eligible and used", reachTop.map((b) => ({
      label: `${b.code} ${b.name_zh}`, value: b.eligible || 0, parts: [{ value: b.used, cls: "used" }],
      text: `${b.used}/${b.eligible ?? "—"} ${pct(b.reach_share)}`,
    }))) : h("p", { class: "muted" }, "暂无数据 · Nothing yet"),
    table([
      { title: ["项目", "Benefit"], cell: (b) => `${b.code} ${b.name_zh}` },
      { title: ["符合人数", "Eligible"], cell: (b) => String(b.eligible ?? "—") },
      { title: ["使用人数", "Used"], cell: (b) => String(b.used) },
      { title: ["覆盖率", "Reach"], cell: (b) => pct(b.reach_share) },
      { title: ["核验", "Redemptions"], cell: (b) => String(b.redemptions) },
    ], reach, undefined, { keep: true }), reachNote);
  reachCard.querySelector(".chart")?.after(h("p", { class: "legend" }, h("span", { class: "key used" }), "使用 used ", h("span", { class: "key under" }), "符合 eligible"));

  const counts = Object.fromEntries(report.by_day.map((d) => [d.day, d]));
  const days = datesFrom(q.date_from, q.date_to).map((day) => ({ day, value: counts[day]?.redemptions || 0, under: counts[day]?.reversals || 0 }));
  const dayCard = chartCard("c-days", bi("每日核验", "Redemptions by day"),
    columns("每日核验量 redemptions by day", days),
    table([
      { title: ["日期", "Day"], cell: (d) => d.day },
      { title: ["核验", "Redemptions"], cell: (d) => String(d.redemptions) },
      { title: ["撤销", "Reversals"], cell: (d) => String(d.reversals) },
    ], report.by_day, undefined, { keep: true }), `${q.date_from} – ${q.date_to}`);
  dayCard.querySelector(".chart")?.after(h("p", { class: "legend" }, h("span", { class: "key bar" }), "核验 redemptions ", h("span", { class: "key under2" }), "撤销 reversals"));

  const byDistrict = [...report.by_district].sort((a, b) => b.redemptions - a.redemptions);
  const districtCard = chartCard("c-districts", bi("各区核验", "Redemptions by district"),
    byDistrict.length ? hbars("各区核验量 redemptions by district", byDistrict.map((k) => ({ label: districtName(k.key), value: k.redemptions })))
      : h("p", { class: "muted" }, "暂无数据 · Nothing yet"),
    table([
      { title: ["区", "District"], cell: (k) => districtName(k.key) },
      { title: ["核验", "Redemptions"], cell: (k) => String(k.redemptions) },
      { title: ["撤销", "Reversals"], cell: (k) => String(k.reversals) },
    ], byDistrict, undefined, { keep: true }));

  const refusals = [...report.refusals].sort((a, b) => b.count - a.count);
  const refusalCard = chartCard("c-refusals", bi("拒绝原因", "Refusals by reason"),
    refusals.length ? hbars("拒绝原因 refusals by reason", refusals.map((x) => ({ label: REASONS[x.reason] || x.reason, value: x.count })))
      : h("p", { class: "muted" }, "暂无数据 · Nothing yet"),
    table([
      { title: ["原因", "Reason"], cell: (x) => [REASONS[x.reason] || "", " ", h("code", {}, x.reason)] },
      { title: ["次数", "Count"], cell: (x) => String(x.count) },
    ], refusals, undefined, { keep: true }));

  const cases = [...r.by_district].sort((a, b) => b.open - a.open);
  const caseCard = chartCard("c-cases", bi("差评待处理与超期", "差评 open and overdue"),
    cases.length ? hbars("各区差评待处理与超期 open and overdue 差评 by district", cases.map((c) => ({
      label: districtName(c.district), value: c.open, base: "open", parts: [{ value: c.overdue, cls: "overdue" }], text: `${c.open} / 超期 ${c.overdue}`,
    }))) : h("p", { class: "muted" }, "没有待处理的差评 · No open cases"),
    table([
      { title: ["区", "District"], cell: (c) => districtName(c.district) },
      { title: ["待处理", "Open"], cell: (c) => String(c.open) },
      { title: ["超期", "Overdue"], cell: (c) => String(c.overdue) },
    ], cases, undefined, { keep: true }));
  if (cases.length) caseCard.querySelector(".chart")?.after(h("p", { class: "legend" }, h("span", { class: "key open" }), "待处理 open ", h("span", { class: "key overdue" }), "其中超期 of which overdue"));
  caseCard.append(h("p", {}, h("a", { href: "/console/ratings", onclick: (e) => { e.preventDefault(); go("ratings"); } }, ...bi("去处理", "Handle them"))));

  main.append(filters,
    h("p", { class: "muted", id: "as-of" }, report.as_of ? `统计更新于 ${fmtTime(report.as_of)} · figures as of (每 5 分钟刷新 refreshed every 5 minutes)` : "统计尚未刷新 · not refreshed yet",
      ` · 在用场馆 ${report.venues_active} venues · 在用设备 ${report.devices_active} devices`),
    kpis, h("div", { class: "grid2" }, reachCard, dayCard, districtCard, refusalCard, caseCard));
}

// ---- benefits -----------------------------------------------------------------------------

const SAMPLE_RULE = { op: "all", all: [{ op: "has_category", category: "DISABLED_SERVICEMAN" }, { op: "disability_grade", min: 1, max: 4 }] };

const DOMAINS = ["culture", "tourism", "transit", "other"];
const DOMAIN_NAMES = { culture: "文化 culture", tourism: "旅游 tourism", transit: "交通 transit", other: "其他 other" };
// Fields of a benefit as the admin API answers that are not part of its definition.
const NOT_SPEC = ["benefit_id", "version", "status", "created_at", "venue_ids", "updated_at"];
const wide = () => window.matchMedia("(min-width: 721px)").matches;

function editLink(path, label, id) {
  return h("a", { href: path, class: "edit-link", "data-edit": id, onclick: (e) => { e.preventDefault(); history.pushState(null, "", path); renderShell(); } }, ...label);
}

async function benefits(main) {
  const list = await api("/v1/admin/benefits?limit=100");
  const items = [...list.items].sort((a, b) => a.code.localeCompare(b.code, "en", { numeric: true }));
  const editing = new URLSearchParams(location.search).get("edit");
  const existing = editing ? items.find((b) => b.benefit_id === editing) : null;
  const city = isCity();
  const actions = (b) => (city ? editLink(`/console/benefits?edit=${b.benefit_id}`, bi("编辑", "Edit"), b.benefit_id) : "");
  const listBox = h("section", { class: "card", "aria-labelledby": "bl" }, h("h2", { id: "bl" }, ...bi("目录", "Catalog")),
    wide() ? table([
      { title: ["代码", "Code"], cell: (b) => b.code },
      { title: ["名称", "Name"], cell: (b) => [b.name_zh, h("br"), h("span", { class: "en" }, b.name_en)] },
      { title: ["领域", "Domain"], cell: (b) => b.domain },
      { title: ["状态", "Status"], cell: (b) => badge(b.status) },
      { title: ["版本", "Version"], cell: (b) => String(b.version) },
      ...(city ? [{ title: ["操作", "Actions"], cell: actions }] : []),
    ], items) : summaryList(items, (b) => [h("strong", {}, b.code), " ", b.name_zh, " ", badge(b.status)], (b) => [
      h("p", { class: "en" }, b.name_en),
      h("p", { class: "muted" }, `${DOMAIN_NAMES[b.domain] || b.domain} · v${b.version}`),
      actions(b),
    ]));
  if (list.next_cursor) listBox.append(h("p", { class: "muted" }, "仅显示前 100 项 · first 100 shown"));
  if (editing && !existing) main.append(h("p", { class: "error", role: "alert" }, "没有这个优待项目 · No such benefit"));
  main.append(city ? editor(existing) : null, listBox);
}

// A list for small screens: one line per item, its details under a disclosure.
function summaryList(items, summary, details, empty = "暂无数据 · Nothing yet") {
  if (!items.length) return h("p", { class: "muted" }, empty);
  return h("ul", { class: "summary-list" }, items.map((item) => h("li", {},
    h("details", {}, h("summary", {}, ...summary(item)), h("div", { class: "more" }, ...details(item))))));
}

function editor(existing = null) {
  const code = h("input", { name: "code", required: true, pattern: "[A-Z][A-Z0-9_-]{0,31}", value: existing ? existing.code : "X1", readonly: !!existing });
  const nameZh = h("input", { name: "name_zh", required: true, value: existing?.name_zh });
  const nameEn = h("input", { name: "name_en", required: true, value: existing?.name_en });
  const domain = h("select", { name: "domain" }, DOMAINS.map((d) => h("option", { value: d, selected: existing?.domain === d }, d)));
  const value = h("select", { name: "value" },
    existing ? h("option", { value: "keep" }, `保持 keep: ${existing.value.kind}`) : null,
    h("option", { value: "free" }, "免费 free"), h("option", { value: "priority" }, "优先 priority"));
  const rule = h("textarea", { name: "rule", rows: 8, spellcheck: "false" });
  rule.value = JSON.stringify(existing ? existing.rule : SAMPLE_RULE, null, 2);
  const categories = h("input", { name: "sample_categories", value: "VETERAN,DISABLED_SERVICEMAN" });
  const grade = h("input", { name: "sample_grade", type: "number", min: 1, max: 10, value: 2 });
  const preview = h("div", { id: "rule-preview", "aria-live": "polite" });
  const result = h("div", { role: "status" });
  const base = existing ? Object.fromEntries(Object.entries(existing).filter(([k]) => !NOT_SPEC.includes(k))) : {};

  const parsedRule = () => {
    try { return JSON.parse(rule.value); } catch (err) { throw new Problem(422, { title: "规则不是有效的 JSON · The rule is not valid JSON", errors: [{ path: "$.rule", message: err.message }] }); }
  };
  // What the form changes (the whole definition for a new benefit).
  const changes = () => {
    const out = { name_zh: nameZh.value.trim() || "（未命名）", name_en: nameEn.value.trim() || "(unnamed)", domain: domain.value, rule: parsedRule() };
    if (value.value !== "keep") out.value = { kind: value.value };
    return existing ? out : { code: code.value.trim(), ...out };
  };
  const draft = () => ({ ...base, ...changes(), status: "active" });
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

  const back = () => { history.pushState(null, "", "/console/benefits"); renderShell(); };
  const statusButton = (status, label) => h("button", { type: "button", class: "secondary", "data-status": status, onclick: async () => {
    try {
      const made = await api(`/v1/admin/benefits/${existing.benefit_id}/status`, { method: "POST", json: { status } });
      result.replaceChildren(h("p", { class: "ok-note" }, `${made.code}: ${made.status} (v${made.version})`));
      setTimeout(back, 0);
    } catch (err) { result.replaceChildren(problemBox(err)); }
  } }, ...label);
  const form = h("form", { class: existing ? "editing" : "", "aria-labelledby": "be", onsubmit: async (event) => {
    event.preventDefault();
    result.replaceChildren();
    try {
      const made = existing
        ? await api(`/v1/admin/benefits/${existing.benefit_id}?expected_version=${existing.version}`, { method: "PATCH", json: changes() })
        : await api("/v1/admin/benefits", { method: "POST", json: draft() });
      result.replaceChildren(h("p", { class: "ok-note" }, `${existing ? "已保存 saved" : "已创建 created"}: ${made.code} ${made.name_zh} (v${made.version})`));
      setTimeout(existing ? back : () => renderShell(), 0);
    } catch (err) {
      result.replaceChildren(problemBox(err));
    }
  } },
    h("div", { class: "grid2" },
      h("div", {}, field(bi("代码", "Code"), code), field(bi("中文名称", "Name (zh)"), nameZh), field(bi("英文名称", "Name (en)"), nameEn),
        field(bi("领域", "Domain"), domain), field(bi("优待内容", "Value"), value),
        field(bi("资格规则 (JSON)", "Eligibility rule"), rule, "例 e.g. {\"op\": \"has_category\", \"category\": \"VETERAN\"}")),
      h("div", {}, h("h3", {}, ...bi("预览（样例人员）", "Preview for a sample person")),
        field(bi("类别", "Categories"), categories), field(bi("残疾等级", "Disability grade"), grade), preview)),
    h("div", { class: "row" },
      h("button", { type: "submit" }, ...(existing ? bi("保存为新版本", "Save as a new version") : bi("创建", "Create"))),
      existing ? h("button", { type: "button", class: "secondary", onclick: back }, ...bi("取消", "Cancel")) : null),
    existing ? h("div", { class: "row status-actions" }, h("span", {}, ...bi("状态", "Status"), " ", badge(existing.status)),
      existing.status !== "active" ? statusButton("active", bi("启用", "Activate")) : null,
      existing.status === "active" ? statusButton("paused", bi("暂停", "Pause")) : null,
      existing.status !== "retired" ? statusButton("retired", bi("退役", "Retire")) : null) : null,
    result);
  livePreview();
  const title = existing ? bi(`编辑优待项目 ${existing.code}（v${existing.version}）`, "Edit benefit") : bi("新建优待项目", "New benefit");
  // Collapsed on a phone (the catalog comes first there); open on a wide screen or when editing.
  return h("details", { class: "card editor-box", open: wide() || !!existing },
    h("summary", {}, h("h2", { id: "be" }, ...title)), form);
}

// ---- merchants, venues, devices, staff ----------------------------------------------------

// The create form, or (with ?edit=<id> in the address) the edit form of one item: `inputs` are
// filled from `item` and sent as PATCH with the fields that changed.
function itemForm({ item, inputs, title, create, update, layout }) {
  const result = h("div", { role: "status" });
  const values = () => Object.fromEntries(Object.entries(inputs).map(([k, el]) => [k, el.value.trim()]));
  if (item) for (const [k, el] of Object.entries(inputs)) if (item[k] !== undefined && item[k] !== null) el.value = String(item[k]);
  const back = () => { history.pushState(null, "", location.pathname); renderShell(); };
  const form = h("form", { class: "card", "aria-labelledby": "item-form", "data-mode": item ? "edit" : "create", onsubmit: async (e) => {
    e.preventDefault();
    try {
      if (item) {
        const changed = Object.fromEntries(Object.entries(values()).filter(([k, v]) => String(item[k] ?? "") !== v));
        if (Object.keys(changed).length) await update(changed);
        back();
      } else {
        await create(values());
        renderShell();
      }
    } catch (err) { result.replaceChildren(problemBox(err)); }
  } }, h("h2", { id: "item-form" }, ...title), h("div", { class: "row" }, ...layout),
  h("div", { class: "row" }, h("button", { type: "submit" }, ...(item ? bi("保存", "Save") : bi("创建", "Create"))),
    item ? h("button", { type: "button", class: "secondary", onclick: back }, ...bi("取消", "Cancel")) : null), result);
  if (item || wide()) return form;
  // On a phone the create form is collapsed: the list comes first.
  return h("details", { class: "card collapsible" }, h("summary", {}, ...title), form);
}

const editing = () => new URLSearchParams(location.search).get("edit");

async function merchantsPage(main) {
  const list = await api("/v1/admin/merchants/?limit=100");
  const item = editing() ? list.items.find((m) => m.id === editing()) : null;
  if (canWrite()) {
    const inputs = { name: h("input", { required: true, name: "name" }), credit_code: h("input", { required: true, name: "credit_code", readonly: !!item }),
      district: h("input", { required: true, name: "district", value: session.who.district || "310101", pattern: "31[0-9]{4}" }),
      contact_name: h("input", { required: true, name: "contact_name" }), contact_phone: h("input", { required: true, name: "contact_phone" }) };
    if (item) delete inputs.credit_code;  // the credit code names the merchant; it is not edited
    main.append(itemForm({
      item, inputs, title: item ? bi(`编辑商户 ${item.name}`, "Edit merchant") : bi("新增商户", "New merchant"),
      create: (body) => api("/v1/admin/merchants/", { method: "POST", json: body }),
      update: (body) => api(`/v1/admin/merchants/${item.id}`, { method: "PATCH", json: body }),
      layout: [field(bi("名称", "Name"), inputs.name), inputs.credit_code ? field(bi("统一社会信用代码", "Credit code"), inputs.credit_code) : null,
        field(bi("区划代码", "District"), inputs.district), field(bi("联系人", "Contact"), inputs.contact_name), field(bi("电话", "Phone"), inputs.contact_phone)],
    }));
  }
  const actions = (m) => canWrite() ? [editLink(`/console/merchants?edit=${m.id}`, bi("编辑", "Edit"), m.id), " ",
    h("button", { type: "button", class: "secondary small", onclick: async () => {
      await api(`/v1/admin/merchants/${m.id}`, { method: "PATCH", json: { status: m.status === "active" ? "suspended" : "active" } }).catch((err) => main.append(problemBox(err)));
      renderShell();
    } }, m.status === "active" ? "暂停 Suspend" : "恢复 Activate")] : "";
  main.append(h("section", { class: "card" }, table([
    { title: ["名称", "Name"], cell: (m) => m.name },
    { title: ["区", "District"], cell: (m) => districtName(m.district) },
    { title: ["联系人", "Contact"], cell: (m) => `${m.contact_name} ${m.contact_phone}` },
    { title: ["状态", "Status"], cell: (m) => badge(m.status) },
    { title: ["操作", "Actions"], cell: actions },
  ], list.items, undefined, { summary: (m) => [m.name, " ", badge(m.status)] })));
}

async function venueOptions() {
  const path = session.who.kind === "staff" ? "/v1/merchant/venues?limit=100" : "/v1/admin/venues/?limit=100";
  return (await api(path)).items;
}

async function venuesPage(main) {
  const venues = await venueOptions();
  const item = editing() ? venues.find((v) => v.id === editing()) : null;
  if (canWrite()) {
    const merchants = (await api("/v1/admin/merchants/?limit=100")).items;
    const inputs = {
      merchant_id: h("select", { name: "merchant_id" }, merchants.map((m) => h("option", { value: m.id }, m.name))),
      name_zh: h("input", { required: true, name: "name_zh" }), address: h("input", { required: true, name: "address" }),
      district: h("input", { required: true, name: "district", value: session.who.district || "310101", pattern: "31[0-9]{4}" }),
      domain: h("select", { name: "domain" }, DOMAINS.map((d) => h("option", { value: d }, d))),
    };
    if (item) {
      delete inputs.merchant_id;  // a venue stays with its merchant
      inputs.daily_capacity = h("input", { name: "daily_capacity", type: "number", min: 1 });
    }
    main.append(itemForm({
      item, inputs, title: item ? bi(`编辑场馆 ${item.name_zh}`, "Edit venue") : bi("新增场馆", "New venue"),
      create: (body) => api("/v1/admin/venues/", { method: "POST", json: body }),
      update: (body) => {
        if ("daily_capacity" in body) body.daily_capacity = body.daily_capacity ? Number(body.daily_capacity) : null;
        return api(`/v1/admin/venues/${item.id}`, { method: "PATCH", json: body });
      },
      layout: [inputs.merchant_id ? field(bi("商户", "Merchant"), inputs.merchant_id) : null, field(bi("名称", "Name"), inputs.name_zh),
        field(bi("地址", "Address"), inputs.address), field(bi("区划代码", "District"), inputs.district), field(bi("领域", "Domain"), inputs.domain),
        inputs.daily_capacity ? field(bi("每日名额", "Daily capacity"), inputs.daily_capacity, "留空为不限 · empty: no limit") : null],
    }));
  }
  const actions = (v) => canWrite() ? [editLink(`/console/venues?edit=${v.id}`, bi("编辑", "Edit"), v.id), " ",
    h("button", { type: "button", class: "secondary small", onclick: async () => {
      if (v.status === "active" && !window.confirm(`关闭场馆 ${v.name_zh}？其设备将被拒绝。 Close this venue? Its devices are refused.`)) return;
      await api(`/v1/admin/venues/${v.id}`, { method: "PATCH", json: { status: v.status === "active" ? "closed" : "active" } }).catch((err) => main.append(problemBox(err)));
      renderShell();
    } }, v.status === "active" ? "关闭 Close" : "重开 Reopen")] : "";
  main.append(h("section", { class: "card" }, table([
    { title: ["名称", "Name"], cell: (v) => v.name_zh },
    { title: ["地址", "Address"], cell: (v) => v.address },
    { title: ["区", "District"], cell: (v) => districtName(v.district) },
    { title: ["领域", "Domain"], cell: (v) => v.domain },
    { title: ["状态", "Status"], cell: (v) => badge(v.status) },
    ...(canWrite() ? [{ title: ["操作", "Actions"], cell: actions }] : []),
  ], venues, undefined, { summary: (v) => [v.name_zh, " ", badge(v.status)] })));
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
  ], devices, undefined, { summary: (d) => [d.label, " · ", venueName[d.venue_id]?.name_zh || "", " ", badge(d.status)] })));
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
    const form = h("form", { class: "card", onsubmit: async (e) => {
      e.preventDefault();
      try {
        await api("/v1/admin/staff/", { method: "POST", json: { merchant_id: merchant.value, username: username.value.trim(), password: password.value, role: role.value } });
        renderShell();
      } catch (err) { result.replaceChildren(problemBox(err)); }
    } }, h("h2", {}, ...bi("新增工作人员", "New staff account")),
    h("div", { class: "row" }, field(bi("商户", "Merchant"), merchant), field(bi("用户名", "Username"), username),
      field(bi("初始密码", "Password"), password), field(bi("角色", "Role"), role)),
    h("button", { type: "submit" }, ...bi("创建", "Create")), result);
    main.append(wide() ? form : h("details", { class: "card collapsible" }, h("summary", {}, ...bi("新增工作人员", "New staff account")), form));
  }
  main.append(h("section", { class: "card" }, table([
    { title: ["用户名", "Username"], cell: (s) => s.username },
    { title: ["角色", "Role"], cell: (s) => s.role || "" },
    { title: ["状态", "Status"], cell: (s) => badge(s.disabled ? "disabled" : "active") },
    { title: ["操作", "Actions"], cell: (s) => canWrite() ? [
      h("button", { type: "button", class: "secondary small", "data-role-to": s.role === "manager" ? "clerk" : "manager", onclick: async () => {
        await api(`/v1/admin/staff/${s.id}`, { method: "PATCH", json: { role: s.role === "manager" ? "clerk" : "manager" } }).catch((err) => main.append(problemBox(err)));
        renderShell();
      } }, s.role === "manager" ? "改为检票员 Make clerk" : "改为经理 Make manager"), " ",
      h("button", { type: "button", class: "secondary small", onclick: async () => {
        await api(`/v1/admin/staff/${s.id}`, { method: "PATCH", json: { disabled: !s.disabled } }).catch((err) => main.append(problemBox(err)));
        renderShell();
      } }, s.disabled ? "启用 Enable" : "停用 Disable")] : "" },
  ], list.items, undefined, { summary: (s) => [s.username, " ", s.role || "", " ", badge(s.disabled ? "disabled" : "active")] })));
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
      h("p", {}, h("strong", {}, "★".repeat(c.stars) + "☆".repeat(5 - c.stars)), " ", c.benefit_code, " · ", c.venue?.name_zh || "", " · ", fmtTime(c.at), " ", badge(c.status),
        c.overdue ? [" ", h("span", { class: "badge overdue" }, "超期 overdue")] : null),
      c.status === "open" && c.due_at ? h("p", { class: c.overdue ? "error due" : "muted due" }, `答复期限 due by ${fmtTime(c.due_at)}`) : null,
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

// ---- audit log ----------------------------------------------------------------------------

const AUDIT_FILTERS = ["actor_kind", "actor_id", "action", "object_kind", "object_id", "district", "from", "to"];

async function auditStatus(box) {
  const st = await api("/v1/admin/audit/status");
  const cp = st.checkpoint;
  const mark = (ok) => (ok === null || ok === undefined ? "—" : ok ? "✓ 有效 valid" : "✗ 无效 INVALID");
  const verified = cp && st.signature_valid && st.consistent !== false && st.previous_signature_valid !== false;
  const rows = cp ? [
    ["树大小 Tree size", String(cp.tree_size)],
    ["签署时间 Signed at", fmtTime(cp.at)],
    ["根哈希 Root hash", cp.root_hash],
    ["签名密钥 Key", `${cp.kid} (${cp.alg})`],
    ["签名 Signature", mark(st.signature_valid)],
    ["与上一检查点一致 Consistent with the previous", st.previous
      ? `${st.consistent ? "✓ 一致 consistent" : "✗ 不一致 NOT consistent"} (${st.previous.tree_size} → ${cp.tree_size}, ${fmtTime(st.previous.at)})`
      : "—（第一个检查点 the first checkpoint）"],
    ["尚未签入的条目 Entries not yet signed", String(Math.max(0, st.entries - cp.tree_size))],
  ] : [];
  const cut = isCity() ? h("button", { type: "button", class: "secondary", id: "cut-checkpoint", onclick: async (e) => {
    e.target.disabled = true;
    try { await api("/v1/admin/audit/checkpoints", { method: "POST" }); await auditStatus(box); } catch (err) { box.append(problemBox(err)); }
  } }, ...bi("立即签署检查点", "Sign a checkpoint now")) : null;
  box.replaceChildren(...[
    h("h2", { id: "as" }, ...bi("验证状态", "Verification status")),
    cp ? h("p", { id: "audit-verdict", class: verified ? "ok-note" : "error", "data-verified": verified ? "true" : "false" },
      h("strong", {}, verified ? "已验证 · verified" : "验证未通过 · NOT verified"), " ",
      verified ? "最新检查点签名有效，且与上一检查点一致。 The latest checkpoint's signature holds and it extends the previous one."
        : st.problem || "")
      : h("p", { id: "audit-verdict", class: "muted", "data-verified": "none" }, "尚未签署检查点 · No checkpoint signed yet"),
    cp ? h("dl", { class: "facts-list" }, rows.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v)))) : null,
    h("p", { class: "muted" }, "完整核验（按内容重算每一条）：", h("code", {}, "./dev audit verify"), " · full check recomputing every entry"),
    cut].filter(Boolean));
}

async function auditPage(main) {
  const params = new URLSearchParams(location.search);
  const district = session.who.role === "district";
  const status = h("section", { class: "card", id: "audit-status", "aria-labelledby": "as" });
  const inputs = {
    actor_kind: h("select", { name: "actor_kind" }, h("option", { value: "" }, "全部 any"),
      ["admin", "staff", "device", "veteran", "system"].map((k) => h("option", { value: k, selected: params.get("actor_kind") === k }, k))),
    actor_id: h("input", { name: "actor_id", value: params.get("actor_id") || "", maxlength: 100 }),
    action: h("input", { name: "action", value: params.get("action") || "", maxlength: 100, placeholder: "benefit.create 或前缀 or prefix device." }),
    object_kind: h("input", { name: "object_kind", value: params.get("object_kind") || "", maxlength: 100 }),
    object_id: h("input", { name: "object_id", value: params.get("object_id") || "", maxlength: 100 }),
    district: district ? h("input", { name: "district", value: districtName(session.who.district), readonly: true })
      : h("select", { name: "district" }, h("option", { value: "" }, "全部 any"),
        Object.keys(DISTRICTS).map((code) => h("option", { value: code, selected: params.get("district") === code }, districtName(code)))),
    from: h("input", { type: "date", name: "from", value: params.get("from") || "" }),
    to: h("input", { type: "date", name: "to", value: params.get("to") || "" }),
  };
  const show = (next) => { history.pushState(null, "", `/console/audit${next.toString() ? `?${next}` : ""}`); renderShell(); };
  const filters = h("form", { class: "card", "aria-label": "筛选 filters", onsubmit: (e) => {
    e.preventDefault();
    const next = new URLSearchParams();
    for (const key of AUDIT_FILTERS) if (!(key === "district" && district) && inputs[key].value.trim()) next.set(key, inputs[key].value.trim());
    show(next);
  } },
  h("details", { class: "filter-box", open: AUDIT_FILTERS.some((k) => params.get(k)) || window.innerWidth > 720 },
    h("summary", {}, ...bi("筛选", "Filters")),
    h("div", { class: "filter-grid" },
      field(bi("操作者类型", "Actor kind"), inputs.actor_kind), field(bi("操作者", "Actor id"), inputs.actor_id),
      field(bi("动作", "Action"), inputs.action),
      field(bi("对象类型", "Object kind"), inputs.object_kind), field(bi("对象", "Object id"), inputs.object_id),
      field(bi("区", "District"), inputs.district), field(bi("起始日", "From"), inputs.from), field(bi("截止日", "To"), inputs.to)),
    h("div", { class: "row" }, h("button", { type: "submit" }, ...bi("查询", "Search")),
      h("button", { type: "button", class: "secondary", onclick: () => show(new URLSearchParams()) }, ...bi("清除", "Clear")))));

  const query = new URLSearchParams({ limit: wide() ? "50" : "20" });
  for (const key of [...AUDIT_FILTERS, "cursor"]) if (params.get(key) && !(key === "district" && district)) query.set(key, params.get(key));
  const [page] = await Promise.all([api(`/v1/admin/audit?${query}`), auditStatus(status)]);
  // An id shown short, as a link to the entries of that actor or object.
  const idLink = (key, id) => {
    if (!id) return "";
    const next = new URLSearchParams({ [key]: id });
    return h("a", { href: `/console/audit?${next}`, class: "id", title: id, "data-id": id, onclick: (e) => { e.preventDefault(); show(next); } },
      id.length > 12 ? `${id.slice(0, 8)}…` : id);
  };
  const detail = (e) => {
    const text = JSON.stringify(e.detail ?? {});
    return text === "{}" ? "" : h("code", { class: "detail" }, text.length > 160 ? `${text.slice(0, 160)}…` : text);
  };
  const list = h("section", { class: "card", "aria-labelledby": "al" }, h("h2", { id: "al" }, ...bi("审计日志", "Audit log")),
    !wide() ? summaryList(page.items, (e) => [h("strong", {}, `#${e.seq}`), " ", h("code", {}, e.action), " ", h("span", { class: "muted" }, fmtTime(e.at))], (e) => [
      h("p", {}, `操作者 actor: ${e.actor_kind}${e.actor_role ? ` ${e.actor_role}` : ""} `, idLink("actor_id", e.actor_id)),
      h("p", {}, `对象 object: ${e.object_kind || ""} `, idLink("object_id", e.object_id)),
      h("p", {}, `区 district: ${e.district ? districtName(e.district) : "—"}`),
      detail(e) ? h("p", {}, detail(e)) : null,
    ], "没有符合条件的条目 · No entries match") : table([
      { title: ["序号", "Seq"], cell: (e) => String(e.seq) },
      { title: ["时间", "Time"], cell: (e) => fmtTime(e.at) },
      { title: ["操作者", "Actor"], cell: (e) => [e.actor_kind, e.actor_role ? ` ${e.actor_role}` : "", " ", idLink("actor_id", e.actor_id)] },
      { title: ["动作", "Action"], cell: (e) => h("code", {}, e.action) },
      { title: ["对象", "Object"], cell: (e) => [e.object_kind || "", " ", idLink("object_id", e.object_id)] },
      { title: ["区", "District"], cell: (e) => (e.district ? districtName(e.district) : "—") },
      { title: ["详情", "Detail"], cell: detail },
    ], page.items, "没有符合条件的条目 · No entries match"),
    h("div", { class: "row pager" },
      params.get("cursor") ? h("button", { type: "button", class: "secondary", onclick: () => { const next = new URLSearchParams(params); next.delete("cursor"); show(next); } }, ...bi("第一页", "First page")) : null,
      page.next_cursor ? h("button", { type: "button", class: "secondary", id: "audit-next", onclick: () => { const next = new URLSearchParams(params); next.set("cursor", page.next_cursor); show(next); } }, ...bi("下一页", "Next page")) : null));
  main.append(status, filters, list);
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
    ], list.items, undefined, { summary: (r) => [fmtTime(r.at), " ", r.benefit_code || "", " ", badge(r.result)] })));
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
