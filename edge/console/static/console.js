/* Security console core: HTTP, session (login, first-admin setup), views and the confirm dialog.
   Plain JS, no dependencies; all text goes in through textContent (never innerHTML).
   The views (alerts.js, rooms.js, devices.js, audit.js) register themselves on window.EdgeConsole. */
(function () {
  "use strict";

  var RANK = { viewer: 0, security: 1, operator: 2, admin: 3 };

  var core = {
    user: null,   // {username, role}
    csrf: "",     // kept in memory only
    views: {},    // name -> {enter(param), leave(), login(), logout()}
    current: null,
    pending: null // the open confirm dialog's {run(note) -> Promise}
  };
  window.EdgeConsole = core;

  function $(id) { return document.getElementById(id); }
  core.$ = $;

  core.show = function (node, on) { node.hidden = !on; };

  core.setError = function (node, message) {
    node.textContent = message || "";
    core.show(node, Boolean(message));
  };

  core.el = function (tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  };

  core.clear = function (node) {
    while (node.firstChild) { node.removeChild(node.firstChild); }
  };

  core.fact = function (list, label, value) {
    list.appendChild(core.el("dt", "", label));
    list.appendChild(core.el("dd", "", value));
  };

  core.formatTime = function (ts) {
    if (typeof ts !== "number" || !isFinite(ts)) { return "unknown"; }
    var date = new Date(ts < 1e12 ? ts * 1000 : ts);
    var sameDay = date.toDateString() === new Date().toDateString();
    var time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    return sameDay ? time : date.toLocaleDateString() + " " + time;
  };

  /** True when the logged-in user has at least this role. */
  core.can = function (role) {
    return Boolean(core.user) && (RANK[core.user.role] || 0) >= RANK[role];
  };

  // ---- HTTP ----------------------------------------------------------------

  core.api = function (method, path, body) {
    var headers = { "Accept": "application/json" };
    var init = { method: method, credentials: "same-origin", headers: headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    if (method !== "GET" && core.csrf) { headers["X-CSRF-Token"] = core.csrf; }
    return fetch(path, init).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (!response.ok) {
          var err = new Error(describe(response.status, data));
          err.status = response.status;
          if (response.status === 401 && core.user && path !== "/api/login") { sessionEnded(); }
          throw err;
        }
        return data;
      });
    });
  };

  function describe(status, data) {
    var detail = data && typeof data.detail === "string" ? data.detail : "";
    if (status === 401) { return detail || "Not logged in."; }
    if (status === 403) { return "Not allowed: " + (detail || "forbidden") + "."; }
    if (status === 404) { return "Not found: " + (detail || "gone") + "."; }
    if (status === 409) { return "Refused: " + (detail || "conflict") + "."; }
    if (status === 422) { return "The request was not accepted (check what you typed)."; }
    if (status === 429) { return detail ? detail.charAt(0).toUpperCase() + detail.slice(1) + "." : "Too many tries; wait."; }
    if (status === 503) { return "Not available right now" + (detail ? ": " + detail : "") + "."; }
    return "Error " + status + (detail ? ": " + detail : "") + ".";
  }

  core.networkMessage = function (err) {
    return err && err.status ? err.message : "Cannot reach the gateway. Check the network and try again.";
  };

  // ---- views ---------------------------------------------------------------

  core.register = function (name, view) { core.views[name] = view; };

  function route() {
    if (!core.user) { return; }
    var hash = (window.location.hash || "#alerts").slice(1);
    var parts = hash.split("/");
    var name = parts[0] === "alert" ? "alert" : parts[0];
    var view = core.views[name];
    var tab = document.querySelector('.tab[data-view="' + name + '"]');
    if (!view || (tab && tab.dataset.role && !core.can(tab.dataset.role))) {
      name = "alerts";
      view = core.views.alerts;
    }
    if (core.current && core.current !== view && core.current.leave) { core.current.leave(); }
    core.current = view;
    Array.prototype.forEach.call(document.querySelectorAll("main > .view"), function (section) {
      core.show(section, section.id === name + "-view");
    });
    Array.prototype.forEach.call(document.querySelectorAll(".tab"), function (link) {
      var here = link.dataset.view === name || (name === "alert" && link.dataset.view === "alerts");
      link.classList.toggle("tab-on", here);
      if (here) { link.setAttribute("aria-current", "page"); } else { link.removeAttribute("aria-current"); }
    });
    view.enter(decodeURIComponent(parts.slice(1).join("/")));
  }

  // ---- session -------------------------------------------------------------

  function loggedIn(data) {
    core.user = { username: data.username, role: data.role };
    core.csrf = data.csrf_token;
    $("who").textContent = data.username + " (" + data.role + ")";
    ["who", "logout", "sound", "nav"].forEach(function (id) { core.show($(id), true); });
    Array.prototype.forEach.call(document.querySelectorAll(".tab[data-role]"), function (link) {
      core.show(link, core.can(link.dataset.role));
    });
    core.show($("login-view"), false);
    core.show($("setup-view"), false);
    Object.keys(core.views).forEach(function (name) {
      if (core.views[name].login) { core.views[name].login(); }
    });
    route();
  }

  function loggedOut(message) {
    var wasIn = core.user !== null;
    core.user = null;
    core.csrf = "";
    if (core.current && core.current.leave) { core.current.leave(); }
    core.current = null;
    Object.keys(core.views).forEach(function (name) {
      if (core.views[name].logout) { core.views[name].logout(); }
    });
    ["who", "logout", "sound", "nav"].forEach(function (id) { core.show($(id), false); });
    Array.prototype.forEach.call(document.querySelectorAll("main > .view"), function (section) {
      core.show(section, false);
    });
    if ($("confirm").open) { $("confirm").close(); }
    $("password").value = "";
    if (wasIn) {
      showLogin(message);
      return;
    }
    // Not logged in: a gateway without an admin offers the one-time setup instead of a login.
    core.api("GET", "/api/setup").then(function (data) {
      if (data && data.required) { showSetup(); } else { showLogin(message); }
    }).catch(function () { showLogin(message); });
  }
  core.loggedOut = loggedOut;

  function showLogin(message) {
    core.show($("setup-view"), false);
    core.show($("login-view"), true);
    core.setError($("login-error"), message || "");
    $("username").focus();
  }

  function showSetup() {
    core.show($("login-view"), false);
    core.show($("setup-view"), true);
    $("setup-token").focus();
  }

  function sessionEnded() { loggedOut("Your session ended. Please log in again."); }
  core.sessionEnded = sessionEnded;

  function submitForm(button, errorNode, path, body, failMessage) {
    button.disabled = true;
    core.setError(errorNode, "");
    core.api("POST", path, body)
      .then(loggedIn)
      .catch(function (err) { core.setError(errorNode, failMessage(err)); })
      .then(function () { button.disabled = false; });
  }

  function onLogin(event) {
    event.preventDefault();
    var password = $("password").value;
    $("password").value = "";
    submitForm($("login-button"), $("login-error"), "/api/login",
      { username: $("username").value, password: password },
      function (err) { return err.status === 401 ? "Wrong username or password." : core.networkMessage(err); });
  }

  function onSetup(event) {
    event.preventDefault();
    var body = { token: $("setup-token").value.trim(), username: $("setup-username").value,
                 password: $("setup-password").value };
    $("setup-password").value = "";
    submitForm($("setup-button"), $("setup-error"), "/api/setup", body, function (err) {
      if (err.status === 403) { return "Wrong setup token."; }
      if (err.status === 409) { showLogin("The admin exists already: log in."); return ""; }
      return core.networkMessage(err);
    });
  }

  function onLogout() {
    core.api("POST", "/api/logout").then(function () { loggedOut(""); })
      .catch(function () { loggedOut(""); });
  }

  /** Re-read the session (after a dropped stream); calls stillValid() unless it ended. */
  core.checkSession = function (stillValid) {
    core.api("GET", "/api/me").then(function (data) { core.csrf = data.csrf_token; stillValid(); })
      .catch(function (err) { if (err.status !== 401) { stillValid(); } });
  };

  // ---- confirm dialog ------------------------------------------------------

  /** Ask before a change: opts {title, text, ok, note: bool, run(note) -> Promise}. */
  core.confirm = function (opts) {
    core.pending = opts;
    $("confirm-title").textContent = opts.title;
    $("confirm-text").textContent = opts.text;
    $("confirm-ok").textContent = opts.ok;
    $("confirm-note").value = "";
    core.show($("confirm-note-wrap"), Boolean(opts.note));
    core.setError($("confirm-error"), "");
    $("confirm-ok").disabled = false;
    $("confirm").showModal();
    (opts.note ? $("confirm-note") : $("confirm-ok")).focus();
  };

  function onConfirm(event) {
    event.preventDefault();
    var pending = core.pending;
    if (!pending) { $("confirm").close(); return; }
    var ok = $("confirm-ok");
    ok.disabled = true;
    pending.run($("confirm-note").value)
      .then(function () {
        core.pending = null;
        $("confirm").close();
      })
      .catch(function (err) {
        ok.disabled = false;
        if (err.status === 401) { return; }
        core.setError($("confirm-error"), core.networkMessage(err));
        if (pending.failed) { pending.failed(err); }
      });
  }

  function onCancel() {
    core.pending = null;
    $("confirm").close();
  }

  // ---- start ---------------------------------------------------------------

  function start() {
    $("login-form").addEventListener("submit", onLogin);
    $("setup-form").addEventListener("submit", onSetup);
    $("setup-skip").addEventListener("click", function () { showLogin(""); });
    $("logout").addEventListener("click", onLogout);
    $("confirm-form").addEventListener("submit", onConfirm);
    $("confirm-cancel").addEventListener("click", onCancel);
    $("confirm").addEventListener("cancel", function () { core.pending = null; });
    window.addEventListener("hashchange", route);
    Object.keys(core.views).forEach(function (name) {
      if (core.views[name].init) { core.views[name].init(); }
    });
    // Resume a session after a reload: the cookie is HttpOnly, /api/me returns the CSRF token.
    core.api("GET", "/api/me").then(loggedIn).catch(function (err) {
      loggedOut(err.status === 401 ? "" : core.networkMessage(err));
    });
  }

  document.addEventListener("DOMContentLoaded", start);
}());
