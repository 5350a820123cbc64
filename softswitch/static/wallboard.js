// Wallboard: the floor pushed by the switch over /api/wallboard/ws (never polled): queues with today's
// figures and thresholds, agents with time in state, alarms. Reconnects by itself. Supervisors change an
// agent's state, log an agent out, and listen / whisper / barge from here.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  let floor = null, received = 0, ws = null, retry = 0;

  const api = window.Login.api;   // the JSON API with the session cookie (login.js)
  const el = window.Login.el;    // DOM builder (login.js)
  function dur(s) {
    s = Math.max(0, Math.floor(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return (h ? h + ":" + String(m).padStart(2, "0") : m) + ":" + String(r).padStart(2, "0");
  }
  function secs(v) { return v == null ? "—" : Math.round(v) + " s"; }
  const elapsed = () => (Date.now() - received) / 1000;   // since the last push: the page ticks locally

  // ------------------------------------------------------------------ login (login.js: supervisors)
  function enter(me) {
    $("board").hidden = false;
    $("whoami").textContent = me.user + " (" + me.role + ")";
    $("sup-ext").value = localStorage.getItem("wallboard-ext") || "";
    connect();
  }
  $("sup-ext").addEventListener("change", () => localStorage.setItem("wallboard-ext", $("sup-ext").value.trim()));

  // ------------------------------------------------------------------ push
  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(proto + "//" + location.host + "/api/wallboard/ws");
    ws.onopen = () => { retry = 0; $("conn").textContent = "live"; $("conn").className = "conn"; };
    ws.onmessage = (m) => {
      const msg = JSON.parse(m.data);
      if (msg.type === "floor") { floor = msg; received = Date.now(); render(); }
    };
    ws.onclose = (ev) => {
      $("conn").textContent = "offline — reconnecting"; $("conn").className = "conn offline";
      if (ev.code === 1008 || ev.code === 4401) { location.reload(); return; }
      retry = Math.min(retry + 1, 6);
      if (retry >= 3) {   // still failing: an ended session (401) needs a new login, not more retries
        api("GET", "/api/me").catch((e) => { if (e.status === 401) location.reload(); });
      }
      setTimeout(connect, 500 * 2 ** (retry - 1));   // 0.5 s, 1 s, 2 s ... 16 s
    };
  }

  // ------------------------------------------------------------------ render
  function render() {
    if (!floor) return;
    const t = elapsed();
    const alarms = $("alarms");
    alarms.replaceChildren(...floor.alarms.map((a) =>
      el("div", { class: "alarm " + a.level, "data-kind": a.kind, "data-level": a.level, "data-subject": a.subject }, a.message)));
    const qb = $("queues").tBodies[0];
    qb.replaceChildren(...floor.queues.map((q) => {
      const wait = q.waiting ? q.longest_wait + t : 0;
      const th = floor.thresholds;
      const lvl = q.waiting && th.longest_wait_alarm && wait >= th.longest_wait_alarm ? "alarm"
        : q.waiting && th.longest_wait_warning && wait >= th.longest_wait_warning ? "warning" : q.longest_wait_level;
      const busy = Object.entries(q.agents || {}).filter(([, n]) => n).map(([s, n]) => s + " " + n).join(", ");
      return el("tr", { "data-queue": q.queue },
        el("td", {}, q.queue),
        el("td", { class: "big waiting" }, q.waiting),
        el("td", { class: "big longest-wait level-" + (q.waiting ? lvl : "ok") }, q.waiting ? dur(wait) : "—"),
        el("td", { class: "big sl level-" + q.service_level_level }, q.service_level == null ? "—" : q.service_level + " %"),
        el("td", { class: "offered" }, q.offered), el("td", { class: "answered" }, q.answered),
        el("td", { class: "abandoned" }, q.abandoned), el("td", { class: "transferred" }, q.transferred),
        el("td", {}, secs(q.asa)), el("td", {}, secs(q.aht)), el("td", {}, busy));
    }));
    const camps = floor.campaigns;
    $("campaigns-card").hidden = !(camps && camps.length);
    if (camps && camps.length) {
      const keys = Object.keys(camps[0]);
      $("campaigns").tBodies[0].replaceChildren(el("tr", {}, ...keys.map((k) => el("th", {}, k))),
        ...camps.map((c) => el("tr", {}, ...keys.map((k) => el("td", {}, c[k])))));
    }
    const ab = $("agents").tBodies[0];
    ab.replaceChildren(...floor.agents.map((a) => {
      const inState = floor.at + t - a.since;
      const acts = el("td", {});
      const act = (label, fn) => acts.append(el("button", { type: "button", "data-action": label, onclick: fn }, label));
      if (a.state !== "logged-out") {
        act("ready", () => agentAction(a.id, { action: "ready" }));
        act("not ready", () => agentAction(a.id, { action: "not_ready", reason: "supervisor" }));
        act("log out", () => agentAction(a.id, { action: "logout" }));
      }
      if (a.state === "on-call") {
        for (const mode of ["listen", "whisper", "barge"]) act(mode, () => monitor(a.id, mode));
      }
      return el("tr", { "data-agent": a.id },
        el("td", {}, (a.name || a.id) + " (" + a.id + ")"),
        el("td", {}, el("span", { class: "state " + a.state }, a.state + (a.reason ? " (" + a.reason + ")" : ""))),
        el("td", { class: "in-state level-" + a.level }, dur(inState)),
        el("td", {}, a.extension || ""), acts);
    }));
  }
  setInterval(() => { $("clock").textContent = new Date().toLocaleTimeString(); render(); }, 1000);

  // ------------------------------------------------------------------ supervisor actions
  async function agentAction(agent, body) {
    $("action-error").textContent = "";
    try { await api("POST", "/api/agents/" + encodeURIComponent(agent) + "/state", body); }
    catch (e) { $("action-error").textContent = agent + ": " + e.message; }
  }
  async function monitor(agent, mode) {
    $("action-error").textContent = "";
    const ext = $("sup-ext").value.trim();
    if (!ext) { $("action-error").textContent = "enter your phone's extension first"; return; }
    localStorage.setItem("wallboard-ext", ext);
    try { await api("POST", "/api/monitor", { agent, mode, extension: ext }); }
    catch (e) { $("action-error").textContent = mode + " " + agent + ": " + e.message; }
  }

  window.Login.start({ title: "Supervisor log in", roles: window.Login.SUPERVISORS,
    refused: "the wallboard is for supervisors", onEnter: enter });
})();
