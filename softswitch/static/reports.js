// Reports: a range of days by day, week or month; the figures as tables, charts drawn by the server
// (SVG, pygal), CSV and XLSX downloads. Reads GET /api/reports (supervisors).
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const api = window.Login.api;   // the JSON API with the session cookie (login.js)
  const day = (s) => new Date(s + "T00:00:00").getTime() / 1000;   // local midnight
  const iso = (d) => d.getFullYear() + "-" + String(d.getMonth() + 1).padStart(2, "0") + "-" + String(d.getDate()).padStart(2, "0");

  function table(rows) {
    if (!rows.length) return document.createTextNode("no data");
    const cols = [];
    for (const r of rows) for (const k of Object.keys(r)) if (!cols.includes(k)) cols.push(k);
    const t = document.createElement("table");
    const head = t.createTHead().insertRow();
    for (const c of cols) { const th = document.createElement("th"); th.textContent = c; head.append(th); }
    const body = t.createTBody();
    for (const r of rows) {
      const tr = body.insertRow();
      for (const c of cols) {
        const v = r[c];
        tr.insertCell().textContent = v == null ? "" : typeof v === "object"
          ? Object.entries(v).filter(([, x]) => x).map(([k, x]) => k + ": " + x).join(", ") : String(v);
      }
    }
    return t;
  }

  async function show() {
    $("error").textContent = "";
    const since = day($("since").value), until = day($("until").value) + 86400;
    const qs = "since=" + since + "&until=" + until + "&period=" + $("period").value;
    try {
      const rep = await api("GET", "/api/reports?" + qs);
      for (const s of ["queues", "agents", "campaigns", "orders", "order_regions", "overdue"]) $("t-" + s).replaceChildren(table(rep[s]));
      for (const img of document.querySelectorAll("img[data-chart]")) img.src = "/api/reports/charts/" + img.dataset.chart + "?" + qs;
      $("xlsx").href = "/api/reports/export?format=xlsx&" + qs;
      for (const s of ["queues", "agents", "campaigns", "orders", "overdue"]) $("csv-" + s).href = "/api/reports/export?format=csv&section=" + s + "&" + qs;
      document.body.dataset.loaded = "1";
    } catch (e) { $("error").textContent = e.message; }
  }
  $("range").addEventListener("submit", (ev) => { ev.preventDefault(); show(); });

  async function start() {
    const p = new URLSearchParams(location.search);
    const today = new Date();
    $("until").value = p.get("until") || iso(today);
    $("since").value = p.get("since") || iso(new Date(today.getTime() - 6 * 86400000));
    if (p.get("period")) $("period").value = p.get("period");
    window.Login.start({ title: "Supervisor log in", roles: window.Login.SUPERVISORS,
      refused: "reports are for supervisors", onEnter: enter });
  }
  function enter(me) { $("main").hidden = false; $("whoami").textContent = me.user; show(); }
  start();
})();
