// The local status page: polls ./status every REFRESH_MS and renders it.
// Read-only; builds the DOM with textContent only (names come from the
// config and are never parsed as HTML).
"use strict";
const REFRESH_MS = 2000;

const QUALITY_ZH = {
  good: "正常", comm_fault: "通讯故障", exception: "异常应答", sensor_fault: "传感器故障",
  over_range: "超量程", under_range: "欠量程", stale: "数据过期", maintenance: "维护中", "not polled": "未采集",
};
const LEVEL_ZH = { HH: "高高报", H: "高报", L: "低报", LL: "低低报" };
const HIGH_LEVELS = { HH: true, LL: true };

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); return e; }
function $(id) { return document.getElementById(id); }

// hhmmss gives the clock part of an RFC 3339 time in its own offset (the
// gateway's configured one), so the page shows gateway time whatever the
// browser's zone.
function hhmmss(ts) {
  if (!ts) return "";
  const m = /T(\d\d:\d\d:\d\d)/.exec(ts);
  return m ? m[1] : ts;
}
function dateTime(ts) {
  if (!ts) return "";
  const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)/.exec(ts);
  return m ? m[1] + " " + m[2] : ts;
}
function fmtValue(v) {
  if (v === null || v === undefined) return "—";
  if (typeof v === "number") {
    if (!isFinite(v)) return String(v);
    const a = Math.abs(v);
    const d = a >= 1000 ? 0 : a >= 100 ? 1 : 2;
    return String(Number(v.toFixed(d)));
  }
  return String(v);
}
function duration(ms) {
  if (ms <= 0) return "0s";
  let s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  return (h ? h + "h" : "") + (h || m ? m + "m" : "") + s + "s";
}
function qualityCell(td, q) {
  td.appendChild(el("span", "q", q));
  if (QUALITY_ZH[q]) td.appendChild(el("span", "q-zh", QUALITY_ZH[q]));
}

let last = null;      // the last status document
let lastOK = 0;       // when it arrived (browser clock)

function render(st) {
  const points = st.points || [];
  const ils = st.interlocks || [];
  const now = Date.parse(st.time);
  $("gw-name").textContent = st.gateway_name || st.gateway;
  $("gw-code").textContent = st.enterprise + " / " + st.gateway;
  $("taken").textContent = "gateway time " + dateTime(st.time) + " (UTC" + (st.utc_offset || "") + ")";

  // Banner: the worst state first.
  const tripped = ils.filter(i => i.tripped);
  const alarms = points.filter(p => p.alarm);
  const faulted = points.filter(p => p.quality !== "good" && p.quality !== "maintenance" && p.quality !== "not polled");
  const maint = points.filter(p => p.maintenance || p.quality === "maintenance");
  const bypassed = ils.filter(i => i.bypass_until && Date.parse(i.bypass_until) > now);
  const banner = $("banner");
  let cls = "normal", main = "ALL NORMAL 运行正常", sub = [];
  if (tripped.length) {
    cls = "trip";
    main = "INTERLOCK TRIPPED 联锁已触发: " + tripped.map(i => i.name).join(", ");
    for (const i of tripped) {
      const outs = (i.actions || []).map(a => a.device + " " + a.table + " " + a.address + " ← " + a.write + " " + a.state).join(", ");
      sub.push(i.name + " cause 原因: " + (i.cause || i.inputs) + (outs ? " — outputs 输出: " + outs : ""));
    }
  } else if (alarms.length) {
    cls = "alarm";
    main = "ALARM 报警: " + alarms.map(p => p.point + " " + p.alarm).join(", ");
  } else if (faulted.length) {
    cls = "fault";
    main = "INSTRUMENT FAULT 仪表故障: " + faulted.map(p => p.point).join(", ");
  }
  if (tripped.length && alarms.length) sub.push(alarms.length + " alarm(s): " + alarms.map(p => p.point + " " + p.alarm).join(", "));
  if ((tripped.length || alarms.length) && faulted.length) sub.push(faulted.length + " faulted: " + faulted.map(p => p.point).join(", "));
  if (bypassed.length) sub.push("bypassed 旁路: " + bypassed.map(i => i.name).join(", "));
  if (maint.length) sub.push("out of service 维护: " + maint.map(p => p.point).join(", "));
  const ups = Object.entries(st.uplinks || {});
  const down = ups.filter(([, u]) => !u.connected).map(([n]) => n);
  if (down.length) sub.push("platform link DOWN 上传中断: " + down.join(", "));
  if (!st.buffer.durable) sub.push("buffer NOT durable 缓存降级: " + (st.buffer.degraded || ""));
  banner.className = "banner " + cls;
  banner.dataset.state = cls;
  $("banner-main").textContent = main;
  const bs = clear($("banner-sub"));
  for (const s of sub) bs.appendChild(el("div", "", s));

  renderInterlocks(ils, now, st.interlock_info || {});
  renderAlarms(alarms);
  renderLink(st, ups);
  renderPoints(points);
  renderEvents(st.events || []);
  renderMaint(maint, now);
  $("audit-head").textContent = st.audit_head ? "head " + st.audit_head : "no audit head yet";
}

function renderInterlocks(ils, now, info) {
  const box = clear($("il-list"));
  if (!ils.length) { box.appendChild(el("p", "muted", "none configured")); return; }
  for (const il of ils) {
    const byp = il.bypass_until && Date.parse(il.bypass_until) > now;
    const d = el("div", "il" + (il.tripped ? " tripped" : "") + (byp ? " bypassed" : ""));
    d.dataset.interlock = il.name;
    d.dataset.state = il.tripped ? "tripped" : byp ? "bypassed" : "normal";
    const head = el("div", "il-head");
    head.appendChild(el("span", "", il.name));
    head.appendChild(el("span", "state " + (il.tripped || byp ? "" : "normal-state"),
      il.tripped ? "TRIPPED 已触发" : byp ? "BYPASSED 旁路" : "normal 正常"));
    d.appendChild(head);
    if (!il.tripped && !byp) {
      // A quiet interlock is one line: its inputs and votes.
      d.classList.add("quiet");
      d.appendChild(el("div", "muted", "votes " + il.votes + "/" + il.need + " · " + il.inputs));
      box.appendChild(d);
      continue;
    }
    if (info[il.name]) d.appendChild(el("div", "desc", info[il.name]));
    if (il.tripped) {
      d.appendChild(el("div", "", "since 触发时间 " + dateTime(il.tripped_at)));
      if (il.cause) d.appendChild(el("div", "", "cause 原因: " + il.cause));
      d.appendChild(el("div", "hint", "latched: reset on the gateway once the cause is gone — edgecollector reset " + il.name));
    }
    if (byp) d.appendChild(el("div", "", "bypass ends in " + duration(Date.parse(il.bypass_until) - now) + " (" + hhmmss(il.bypass_until) + ")"));
    const ul = el("ul");
    for (const a of il.actions || []) {
      let s = a.device + " " + a.table + " " + a.address + " ← " + a.write + ": " + a.state;
      if (a.read_back !== undefined && a.read_back !== null) s += ", read back " + a.read_back;
      if (a.feedback) s += ", feedback " + a.feedback;
      if (a.error) s += " — " + a.error;
      const li = el("li", a.state === "failed" || a.state === "mismatch" ? "bad" : "", s);
      li.dataset.action = a.state;
      ul.appendChild(li);
    }
    if (ul.childNodes.length) d.appendChild(ul);
    box.appendChild(d);
  }
}

function renderAlarms(alarms) {
  const box = clear($("alarm-list"));
  if (!alarms.length) { box.appendChild(el("p", "muted", "none 无")); return; }
  for (const p of alarms) {
    const d = el("div", "alarm-item " + (HIGH_LEVELS[p.alarm] ? "hi" : "lo"));
    d.dataset.point = p.point;
    d.appendChild(el("span", "lvl", p.alarm));
    d.appendChild(document.createTextNode(" " + p.point + " " + fmtValue(p.value) + " " + (p.unit || "") + " "));
    d.appendChild(el("span", "zh", (LEVEL_ZH[p.alarm] || "") + " " + (p.name || "")));
    box.appendChild(d);
  }
}

function kv(dl, k, v, cls) {
  dl.appendChild(el("dt", "", k));
  dl.appendChild(el("dd", cls || "", v));
}

function renderLink(st, ups) {
  const u = clear($("uplinks"));
  for (const [name, x] of ups) {
    const d = el("div", "uplink");
    d.dataset.uplink = name;
    const dl = el("dl", "kv");
    kv(dl, name, x.connected ? "connected 已连接" : "DISCONNECTED 未连接", x.connected ? "good" : "bad");
    kv(dl, "backlog 积压", x.backlog + (x.oldest_unacked ? " (oldest " + dateTime(x.oldest_unacked) + ")" : ""));
    if (x.last_error) kv(dl, "last error", x.last_error, "bad");
    d.appendChild(dl);
    u.appendChild(d);
  }
  const b = st.buffer;
  const box = clear($("buffer"));
  const dl = el("dl", "kv");
  kv(dl, "buffer 缓存", b.durable ? "durable 持久" : "DEGRADED 降级: " + b.degraded, b.durable ? "good" : "bad");
  kv(dl, "messages", b.messages + " (last seq " + b.last_seq + ", queue " + b.queue + ")");
  const ranges = (b.dropped_ranges || []).slice(-4).map(r => r.First === r.Last ? String(r.First) : r.First + "–" + r.Last);
  kv(dl, "dropped 丢弃", b.dropped + (ranges.length ? " (seq " + ranges.join(", ") + ")" : ""), b.dropped ? "bad" : "");
  const days = b.retention_s ? Math.round(b.retention_s / 86400) + " d configured" : "";
  kv(dl, "retention 保留", (b.oldest ? "since " + dateTime(b.oldest) : "empty") + (days ? "; " + days : ""));
  box.appendChild(dl);
}

function renderPoints(points) {
  const body = $("pt-body");
  const f = $("filter").value.trim().toLowerCase();
  const rows = document.createDocumentFragment();
  for (const p of points) {
    const text = [p.point, p.name, p.quality, QUALITY_ZH[p.quality] || "", p.alarm || "", p.device || "", p.fault || ""].join(" ").toLowerCase();
    if (f && !text.includes(f)) continue;
    let cls = "";
    if (p.alarm) cls = HIGH_LEVELS[p.alarm] ? "alarm-hi" : "alarm-lo";
    else if (p.maintenance || p.quality === "maintenance") cls = "maint";
    else if (p.quality !== "good" && p.quality !== "not polled") cls = "faulted";
    const tr = el("tr", cls);
    tr.dataset.point = p.point;
    tr.dataset.quality = p.quality;
    tr.appendChild(el("td", "code", p.point));
    tr.appendChild(el("td", "name", p.name));
    const v = el("td", "num value", fmtValue(p.value) + (p.value !== null && p.unit ? " " + p.unit : ""));
    v.dataset.value = p.value === null || p.value === undefined ? "" : String(p.value);
    tr.appendChild(v);
    const q = el("td", "quality");
    qualityCell(q, p.quality);
    if (p.fault) q.appendChild(el("span", "fault-text", p.fault));
    tr.appendChild(q);
    const a = el("td", "alarm", p.alarm || "");
    if (p.alarm && LEVEL_ZH[p.alarm]) a.appendChild(el("span", "zh", LEVEL_ZH[p.alarm]));
    tr.appendChild(a);
    tr.appendChild(el("td", "upd", hhmmss(p.updated)));
    rows.appendChild(tr);
  }
  clear(body).appendChild(rows);
}

function evClass(e) {
  if (e.type === "interlock" && (e.state === "tripped" || e.state === "action_failed" || e.state === "action_mismatch")) return "ev-trip";
  if (e.type === "alarm" && e.state === "raised") return "ev-alarm";
  if (e.type === "fault" && e.state === "raised") return "ev-fault";
  return "";
}

function renderEvents(evs) {
  const ol = clear($("ev-list"));
  if (!evs.length) { ol.appendChild(el("li", "muted", "none yet")); return; }
  for (const e of evs) {
    const li = el("li", evClass(e));
    li.dataset.type = e.type;
    li.dataset.state = e.state;
    li.appendChild(el("span", "t", hhmmss(e.ts)));
    let s = e.type + " " + e.state + " " + (e.point || e.interlock || e.subject || "");
    if (e.level) s += " " + e.level;
    if (e.value !== undefined && e.value !== null) s += " " + fmtValue(e.value) + (e.unit ? " " + e.unit : "");
    if (e.message) s += ": " + e.message;
    li.appendChild(document.createTextNode(s));
    ol.appendChild(li);
  }
}

function renderMaint(maint, now) {
  const box = clear($("maint-list"));
  if (!maint.length) { box.appendChild(el("p", "muted", "none 无")); return; }
  for (const p of maint) {
    const m = p.maintenance;
    let s = p.point + " " + (p.name || "");
    if (m) s += " — " + m.reason + " (by " + m.by + ", ends in " + duration(Date.parse(m.until) - now) + ")";
    const d = el("div", "", s);
    d.dataset.point = p.point;
    box.appendChild(d);
  }
}

function setConn(ok, text) {
  const c = $("conn");
  c.className = "pill " + (ok ? "ok" : "bad");
  c.textContent = text;
}

async function poll() {
  try {
    const r = await fetch("status", { cache: "no-store", credentials: "same-origin" });
    if (!r.ok) throw new Error("HTTP " + r.status);
    last = await r.json();
    lastOK = Date.now();
    render(last);
    setConn(true, "live 实时");
    document.body.dataset.refreshed = String(lastOK);
  } catch (err) {
    const age = lastOK ? " — last update " + duration(Date.now() - lastOK) + " ago" : "";
    setConn(false, "NO DATA 无数据" + age);
    if (last) $("banner").classList.add("stale");
  } finally {
    setTimeout(poll, REFRESH_MS);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("filter").addEventListener("input", () => { if (last) renderPoints(last.points || []); });
  poll();
});
