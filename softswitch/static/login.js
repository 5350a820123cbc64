// The login shared by the pages (desk, wallboard, reports, work orders): the JSON API helper that carries
// the session cookie, a DOM builder (el), and the login form, rendered into the page's <section id="login"> placeholder.
// One place, so that a change to the session (cookie, error text, the roles a page admits) reaches
// every page. The server sets the session cookie (HttpOnly) on POST /api/session; the page never
// stores the token itself.
"use strict";
window.Login = (function () {
  const $ = (id) => document.getElementById(id);
  const SUPERVISORS = ["supervisor", "admin"];

  // fetch a JSON API path with the session cookie; a failure throws an Error with the API's message
  // and the HTTP status (err.status: 401 = the session has ended)
  async function api(method, path, body) {
    const opts = { method, headers: {}, credentials: "same-origin" };
    if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
    const r = await fetch(path, opts);
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (!r.ok) { const err = new Error((data && data.error) || r.statusText); err.status = r.status; throw err; }
    return data;
  }

  // build an element: attributes ("class" sets className, "onclick" etc. add listeners), then children
  // (nodes, or text for anything else); the pages build their DOM with it (no markup injection)
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
    }
    for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(k == null ? "" : String(k)));
    return e;
  }

  // the form, built with DOM calls (the pages' CSP allows no inline script or markup injection)
  function render(box, title, userLabel) {
    box.replaceChildren(
      el("h2", {}, title),
      el("form", { id: "login-form", autocomplete: "on" },
        el("label", {}, userLabel + " ", el("input", { id: "login-user", name: "user", required: "",
          maxlength: "200", autocomplete: "username" })),
        " ",
        el("label", {}, "Password ", el("input", { id: "login-password", name: "password", type: "password",
          required: "", maxlength: "1024", autocomplete: "current-password" })),
        " ",
        el("button", { id: "login-button", type: "submit" }, "Log in"),
        el("p", { id: "login-error", class: "error", role: "alert" })));
  }

  // Show the page for the session, or the login form until someone allowed logs in.
  //   title, userLabel: the form's heading and user field label
  //   roles: the roles the page admits (null: any logged-in user); refused: what others are told
  //   onEnter(me): the page starts with GET /api/me's (or the login's) answer; the form is hidden first
  async function start(opts) {
    const box = $("login");
    render(box, opts.title || "Log in", opts.userLabel || "User");
    const allowed = (me) => !opts.roles || opts.roles.includes(me.role);
    const error = (msg) => { $("login-error").textContent = msg; };
    const enter = (me) => { box.hidden = true; opts.onEnter(me); };
    $("login-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      error("");
      try {
        const me = await api("POST", "/api/session", { user: $("login-user").value.trim(), password: $("login-password").value });
        $("login-password").value = "";
        if (!allowed(me)) { error(opts.refused); return; }
        enter(me);
      } catch (e) { error(e.message); }
    });
    let me = null;
    try { me = await api("GET", "/api/me"); } catch (e) { me = null; }
    if (me && allowed(me)) return enter(me);
    box.hidden = false;
    if (me) error(opts.refused);
  }

  return { api, el, start, SUPERVISORS };
})();
