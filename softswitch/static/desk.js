// Agent desk: log in, set ready / not ready, see the screen pop when a call is offered, save a work
// order, transfer. Talks to the switch's JSON API (session cookie) and its WebSocket (/api/ws).
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  let me = null;          // {user, role}
  let call = null;        // {id, number, customer, state}
  let ws = null, wsRetry = 0, onHold = false, recording = false;
  // the browser phone (phone.js): its signalling rides on this page's WebSocket
  const phone = window.DeskPhone ? window.DeskPhone.create((m) => { if (ws && ws.readyState === 1) ws.send(JSON.stringify(m)); }) : null;

  const api = window.Login.api;   // the JSON API with the session cookie (login.js)

  function text(id, value) { $(id).textContent = value == null ? "" : String(value); }
  function when(t) { return t ? new Date(t * 1000).toLocaleString() : ""; }

  function showState(agent) {
    const el = $("state");
    const st = agent ? agent.state : "—";
    el.textContent = agent ? st + (agent.reason ? " (" + agent.reason + ")" : "") : "not an ACD agent";
    el.className = "state " + st;
  }

  // ------------------------------------------------------------------ login (login.js: any role)
  function enterDesk() {
    $("desk").hidden = false;
    text("whoami", me.user + (me.role === "supervisor" ? " (supervisor)" : ""));
    showState(me.agent);
    $("sup-links").hidden = !(me.role === "supervisor" || me.role === "admin");
    connect();
  }

  $("btn-signout").addEventListener("click", async () => {
    try { await api("DELETE", "/api/session"); } catch (e) { /* gone anyway */ }
    if (ws) { ws.onclose = null; ws.close(); }
    location.reload();
  });

  // ------------------------------------------------------------------ agent state
  async function agentAction(action, extra) {
    text("agent-error", "");
    try { showState(await api("POST", "/api/agents/" + encodeURIComponent(me.user) + "/state", Object.assign({ action }, extra || {}))); }
    catch (e) { text("agent-error", e.message); }
  }
  let phoneExt = null, phoneStarting = null;   // the extension the browser phone registered; a start under way
  function startPhone() {
    text("agent-error", "");
    phoneStarting = phone.start().then((ext) => { phoneExt = ext; $("agent-ext").value = ext; return true; },
      (e) => { phoneExt = null; text("agent-error", "browser phone: " + e.message); return false; })
      .finally(() => { phoneStarting = null; });
    return phoneStarting;
  }
  $("btn-login").addEventListener("click", async () => {
    if (phone && $("browser-phone").checked && !phoneExt && !(await (phoneStarting || startPhone()))) return;
    const ext = $("agent-ext").value.trim();   // with the browser phone: its extension rings this page
    agentAction("login", ext ? { extension: ext } : {});
  });
  $("browser-phone").addEventListener("change", () => {
    if (!phone) return;
    if ($("browser-phone").checked) startPhone();
    else { phone.stop(); phoneExt = null; }
  });
  $("btn-ready").addEventListener("click", () => agentAction("ready"));
  $("btn-notready").addEventListener("click", () => agentAction("not_ready", { reason: $("notready-reason").value }));
  $("btn-wrapup").addEventListener("click", () => agentAction("wrapup_end"));
  $("btn-logout").addEventListener("click", () => agentAction("logout"));

  // ------------------------------------------------------------------ WebSocket
  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(proto + "//" + location.host + "/api/ws");
    ws.onopen = () => { text("conn", "online"); if (phone && wsRetry) phone.reconnected(); wsRetry = 0; };
    ws.onclose = () => {
      text("conn", "offline");
      wsRetry = Math.min(wsRetry + 1, 10);
      setTimeout(connect, 500 * wsRetry);
    };
    ws.onmessage = (m) => {
      let msg;
      try { msg = JSON.parse(m.data); } catch (e) { return; }
      handle(msg);
    };
  }

  function handle(msg) {
    if (msg.type === "hello") { showState(msg.agent); return; }
    if (msg.type === "order_overdue" || msg.type === "order_escalated") {   // supervisors: the work-order loop
      text("order-alerts", "Work order #" + msg.order + " (" + msg.kind + ") overdue" + (msg.type === "order_escalated"
        ? ", escalated to " + (msg.to || "nobody named") : "") + " — /orders");
      return;
    }
    if (phone && typeof msg.type === "string" && msg.type.startsWith("phone.")) {
      if (msg.type === "phone.stopped" && msg.reason) { $("browser-phone").checked = false; phoneExt = null; }
      phone.handle(msg);
      return;
    }
    if (msg.type === "agent_state" && msg.agent === me.user) { showState({ state: msg.state, reason: msg.reason }); return; }
    if (msg.type === "offer" && msg.agent === me.user) { showPop(msg); return; }
    if (msg.type === "connected" && msg.agent === me.user && call && call.id === msg.call) { setStatus("talking"); return; }
    if (msg.type === "amd" && msg.agent === me.user && call && call.id === msg.call) { showAmd(msg); return; }
    if (msg.type === "call_end" && call && call.id === msg.call) { setStatus("ended"); }
  }

  function setStatus(s) {
    if (call) call.state = s;
    const el = $("call-status");
    el.textContent = s === "ringing" ? (phone && $("browser-phone").checked ? "ringing — answer in the browser phone" : "ringing — answer on your phone") : s === "talking" ? "talking" : s === "ended" ? "ended" : s;
    el.className = "status " + s;
  }

  // ------------------------------------------------------------------ screen pop
  function showPop(msg) {
    const pop = msg.pop || { number: msg.caller, is_new: true, region: null, customer: { id: null, name: "" }, calls: [], orders: [], warnings: [] };
    call = { id: msg.call, number: pop.number, customer: pop.customer, state: "ringing" };
    onHold = false; recording = false;
    $("btn-hold").textContent = "Hold"; $("btn-record").textContent = "Record";
    setStatus("ringing");
    $("pop").hidden = false;
    text("pop-number", pop.number);
    text("pop-name", pop.is_new ? "New caller" : (pop.customer.name || "(no name)"));
    text("pop-vip", pop.customer.vip_level ? "VIP " + pop.customer.vip_level : "");
    text("pop-region", pop.region || "");
    text("pop-queue", msg.queue || "");
    text("pop-warnings", (pop.warnings || []).map((w) => w.list + ": " + w.pattern + (w.reason ? " — " + w.reason : "")).join("; "));
    showOutbound(msg.variables || {});
    const ctx = Object.assign({}, msg.variables || {}, msg.context || {});
    text("pop-context", Object.keys(ctx).map((k) => k + ": " + ctx[k]).join(" · ") || "—");
    const ul = $("pop-orders");
    ul.replaceChildren();
    for (const o of pop.orders) addOrder(o);
    if (!pop.orders.length) { const li = document.createElement("li"); li.className = "none"; li.textContent = "none"; ul.appendChild(li); }
    const tb = $("pop-calls").tBodies[0];
    tb.replaceChildren();
    for (const c of pop.calls) {
      const tr = document.createElement("tr");
      for (const v of [when(c.arrived_at), c.queue || "", c.agent || "", c.disposition, c.talk_s != null ? Math.round(c.talk_s) + " s" : ""]) {
        const td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
      }
      tb.appendChild(tr);
    }
    $("wo-name-label").hidden = !pop.is_new;
    $("wo-name").value = "";
    text("wo-result", "");
    text("call-error", "");
  }

  // ------------------------------------------------------------------ outbound (docs/outbound.md)
  function showOutbound(v) {
    $("ob-box").hidden = !v.outbound;
    text("ob-msg", "");
    text("ob-amd", "");
    const audio = $("ob-audio");
    audio.hidden = true; audio.removeAttribute("src");
    $("ob-dial").hidden = $("ob-skip").hidden = true;
    if (!v.outbound) return;
    call.contact = v.contact;
    const what = v.kind === "campaign" ? "campaign " + v.campaign : "callback (" + v.kind + ")";
    text("ob-what", what + (v.name ? " — " + v.name : "") + (v.note ? " — " + v.note : ""));
    if (v.audio) { audio.src = "/api/outbound/contacts/" + encodeURIComponent(v.contact) + "/audio"; audio.hidden = false; }
    if (v.mode === "preview") $("ob-dial").hidden = $("ob-skip").hidden = false;
  }
  // answering-machine detection heard the customer (progressive: she is on the line; docs/outbound.md)
  function showAmd(m) {
    text("ob-amd", m.verdict === "MACHINE" ? "answering machine? (" + m.cause + ")" : "detector: " + m.verdict.toLowerCase() + " (" + m.cause + ")");
    if (m.verdict === "MACHINE") $("ob-result").value = "machine";   // preselected; she saves it at wrap-up
  }
  async function preview(action) {
    if (await callAction("preview", { action })) { $("ob-dial").hidden = $("ob-skip").hidden = true; }
  }
  // click-to-dial: the agent's phone rings first, then the customer; the offer event pops his record
  $("c2d-button").addEventListener("click", async () => {
    const to = $("c2d-number").value.trim();
    text("call-error", "");
    if (!/^\+?[0-9][0-9 ()./-]{0,39}$/.test(to)) { text("call-error", "enter the number to call"); return; }
    try {
      const who = await api("GET", "/api/me");
      if (!who.agent || !who.agent.extension) throw new Error("log in to the queues first: your phone rings first");
      await api("POST", "/api/calls", { from: who.agent.extension, to: to.replace(/[ ()./-]/g, "") });
      $("c2d-number").value = "";
    } catch (e) { text("call-error", e.message); }
  });
  $("ob-dial").addEventListener("click", () => preview("dial"));
  $("ob-skip").addEventListener("click", () => preview("skip"));
  $("ob-save").addEventListener("click", async () => {
    text("ob-msg", "");
    if (!call || call.contact == null) { text("ob-msg", "no outbound contact on screen"); return; }
    try {
      const c = await api("POST", "/api/outbound/contacts/" + encodeURIComponent(call.contact) + "/result", { result: $("ob-result").value });
      text("ob-msg", "saved: " + c.last_result + (c.next_due ? ", next try " + when(c.next_due) : ""));
    } catch (e) { text("ob-msg", e.message); }
  });

  function addOrder(o) {
    const ul = $("pop-orders");
    const none = ul.querySelector("li.none");
    if (none) none.remove();
    const li = document.createElement("li");
    li.dataset.id = o.id;
    li.textContent = "#" + o.id + " " + o.kind + " (" + o.status + "): " + o.summary;
    ul.appendChild(li);
  }

  // ------------------------------------------------------------------ call control
  async function callAction(path, body) {
    text("call-error", "");
    if (!call) { text("call-error", "no call"); return false; }
    try { await api("POST", "/api/calls/" + encodeURIComponent(call.id) + "/" + path, body); return true; }
    catch (e) { text("call-error", e.message); return false; }
  }
  $("btn-hold").addEventListener("click", async () => {
    if (await callAction("hold", { on: !onHold })) { onHold = !onHold; $("btn-hold").textContent = onHold ? "Resume" : "Hold"; }
  });
  $("btn-record").addEventListener("click", async () => {
    if (await callAction("recording", { on: !recording })) { recording = !recording; $("btn-record").textContent = recording ? "Stop recording" : "Record"; }
  });
  $("btn-hangup").addEventListener("click", () => callAction("hangup", {}));
  $("xfer-button").addEventListener("click", async () => {
    const target = $("xfer-target").value.trim();
    if (!/^\+?[0-9*#]{1,32}$/.test(target)) { text("call-error", "transfer to an extension or queue number"); return; }
    if (await callAction("transfer", { target })) setStatus("transferred to " + target);
  });
  $("note-button").addEventListener("click", async () => {
    const note = $("note-text").value.trim();
    if (!note) return;
    if (await callAction("context", { ["note_" + me.user]: note })) $("note-text").value = "";
  });

  // ------------------------------------------------------------------ work orders
  $("wo-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    text("wo-result", "");
    if (!call) { text("wo-result", "no caller on screen"); return; }
    try {
      if (!call.customer || call.customer.id == null) {
        const name = $("wo-name").value.trim();
        call.customer = await api("POST", "/api/customers", name ? { name, phones: [call.number] } : { phones: [call.number] });
        text("pop-name", call.customer.name || "(no name)");
        $("wo-name-label").hidden = true;
      }
      const order = await api("POST", "/api/orders", {
        kind: $("wo-kind").value, customer_id: call.customer.id,
        summary: $("wo-summary").value.trim(), details: $("wo-details").value,
      });
      addOrder(order);
      text("wo-result", "Saved work order #" + order.id);
      $("wo-summary").value = ""; $("wo-details").value = "";
    } catch (e) { text("wo-result", "Not saved: " + e.message); }
  });

  window.Login.start({ title: "Log in", userLabel: "Agent id", onEnter: (m) => { me = m; enterDesk(); } });
})();
