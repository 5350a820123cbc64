// Work orders: a filtered list (status, kind, region, assignee, overdue only), assign, close, escalate.
// Reads GET /api/orders (and GET /api/overdue-orders for the overdue filter); overdue rows are marked.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  let me = null;
  const api = window.Login.api;   // the JSON API with the session cookie (login.js)
  const el = window.Login.el;    // DOM builder (login.js)
  const when = (t) => t ? new Date(t * 1000).toLocaleString() : "";
  const NEXT = { open: "assigned", assigned: "in_progress", in_progress: "resolved", resolved: "closed" };

  async function load() {
    $("error").textContent = "";
    const st = $("f-status").value, kind = $("f-kind").value, region = $("f-region").value.trim(), who = $("f-assignee").value.trim();
    const qs = new URLSearchParams({ limit: "200" });
    if (st && st !== "all") qs.set("status", st);
    if (kind) qs.set("kind", kind);
    if (region) qs.set("region", region);
    if (who) qs.set("assignee", who);
    try {
      const [page, overdue] = await Promise.all([api("GET", "/api/orders?" + qs), api("GET", "/api/overdue-orders")]);
      const late = new Map(overdue.map((o) => [o.id, o]));
      let items = page.items;
      if (!st) items = items.filter((o) => o.status !== "closed");
      if ($("f-overdue").checked) items = items.filter((o) => late.has(o.id));
      $("orders").tBodies[0].replaceChildren(...items.map((o) => row(o, late.get(o.id))));
      document.body.dataset.loaded = String(Date.now());
    } catch (e) { $("error").textContent = e.message; }
  }

  function row(o, late) {
    const who = el("input", { size: "8", maxlength: "200", "aria-label": "assignee", value: o.assignee || "" });
    const acts = el("td", {});
    if (o.status !== "closed" && o.status !== "resolved") {
      acts.append(who, el("button", { type: "button", "data-action": "assign", onclick: () => act(() =>
        api("POST", "/api/orders/" + o.id + "/assign", { assignee: who.value.trim() })) }, "assign"));
    }
    if (o.status !== "closed") {
      acts.append(el("button", { type: "button", "data-action": "close", onclick: () => act(() => close(o)) }, "close"));
    }
    if (o.kind === "complaint" && o.status !== "closed") {
      acts.append(el("button", { type: "button", "data-action": "escalate", onclick: () => act(() =>
        api("POST", "/api/orders/" + o.id + "/escalate", {})) }, "escalate"));
    }
    return el("tr", { "data-order": o.id, class: late ? "overdue" : "" },
      el("td", {}, o.id), el("td", {}, o.kind + (o.escalation ? " ↑" + o.escalation : "")), el("td", { class: "status" }, o.status),
      el("td", {}, o.region || ""), el("td", { class: "assignee" }, o.assignee || ""),
      el("td", { class: late ? "due late" : "due" }, when(o.due_at) + (late ? " (overdue " + Math.round(late.overdue_s / 60) + " min"
        + (late.escalated_to ? ", escalated to " + late.escalated_to : "") + ")" : "")),
      el("td", {}, o.summary || ""), acts);
  }

  async function close(o) {   // along the workflow: open -> assigned -> in_progress -> resolved -> closed
    let status = o.status;
    if (status === "open") { await api("POST", "/api/orders/" + o.id + "/assign", { assignee: o.assignee || me.user }); status = "assigned"; }
    while (status !== "closed") {
      const next = NEXT[status];
      await api("POST", "/api/orders/" + o.id + "/status", { status: next, expect: status, note: "closed from the work-order list" });
      status = next;
    }
  }
  async function act(fn) { try { await fn(); } catch (e) { $("error").textContent = e.message; } await load(); }

  $("filter").addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
  function enter() { $("main").hidden = false; $("whoami").textContent = me.user; load(); }
  window.Login.start({ title: "Log in", onEnter: (m) => { me = m; enter(); } });   // any role (login.js)
})();
