/* Security console page: login, live open alerts over SSE, acknowledge/resolve, optional beep.
   Plain JS, no dependencies; all text goes in through textContent (never innerHTML). */
(function () {
  "use strict";

  var SEVERITY_LABEL = { critical: "Critical", warning: "Warning", info: "Info" };
  var STATE_LABEL = { raised: "Raised", acknowledged: "Acknowledged", resolved: "Resolved" };
  var REBEEP_MS = 30000; // repeat the beep while a critical alert is still unacknowledged
  var RETRY_MS = 5000;

  var state = {
    user: null,        // {username, role}
    csrf: "",          // kept in memory only
    stream: null,      // EventSource
    retryTimer: 0,
    refreshTimer: 0,
    sound: false,
    audio: null,       // AudioContext, created on the first toggle (a user gesture)
    rebeepTimer: 0,
    alerts: [],
    pending: null      // {alert, action} while the confirm dialog is open
  };

  function $(id) { return document.getElementById(id); }

  function show(el, on) { el.hidden = !on; }

  function setError(el, message) {
    el.textContent = message || "";
    show(el, Boolean(message));
  }

  // ---- HTTP ----------------------------------------------------------------

  function api(method, path, body) {
    var headers = { "Accept": "application/json" };
    var init = { method: method, credentials: "same-origin", headers: headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    if (method !== "GET" && state.csrf) { headers["X-CSRF-Token"] = state.csrf; }
    return fetch(path, init).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (!response.ok) {
          var err = new Error(describe(response.status, data));
          err.status = response.status;
          throw err;
        }
        return data;
      });
    });
  }

  function describe(status, data) {
    var detail = data && typeof data.detail === "string" ? data.detail : "";
    if (status === 401) { return detail || "Not logged in."; }
    if (status === 403) { return "Not allowed: " + (detail || "forbidden") + "."; }
    if (status === 404) { return "Not found: " + (detail || "gone") + "."; }
    if (status === 409) { return "Refused: " + (detail || "conflict") + "."; }
    if (status === 422) { return "The request was not accepted (check the note length)."; }
    if (status === 429) { return detail ? detail.charAt(0).toUpperCase() + detail.slice(1) + "." : "Too many tries; wait."; }
    return "Error " + status + (detail ? ": " + detail : "") + ".";
  }

  function networkMessage(err) {
    return err && err.status ? err.message : "Cannot reach the gateway. Check the network and try again.";
  }

  // ---- session -------------------------------------------------------------

  function loggedIn(data) {
    state.user = { username: data.username, role: data.role };
    state.csrf = data.csrf_token;
    $("who").textContent = data.username + " (" + data.role + ")";
    show($("who"), true);
    show($("logout"), true);
    show($("sound"), true);
    show($("login-view"), false);
    show($("alerts-view"), true);
    setError($("list-error"), "");
    connect();
  }

  function loggedOut(message) {
    disconnect();
    state.user = null;
    state.csrf = "";
    state.alerts = [];
    render();
    show($("who"), false);
    show($("logout"), false);
    show($("sound"), false);
    show($("alerts-view"), false);
    show($("login-view"), true);
    setConn("off");
    setError($("login-error"), message || "");
    if ($("confirm").open) { $("confirm").close(); }
    $("password").value = "";
    $("username").focus();
  }

  function onLogin(event) {
    event.preventDefault();
    var button = $("login-button");
    button.disabled = true;
    setError($("login-error"), "");
    api("POST", "/api/login", { username: $("username").value, password: $("password").value })
      .then(function (data) { $("password").value = ""; loggedIn(data); })
      .catch(function (err) {
        $("password").value = "";
        setError($("login-error"), err.status === 401 ? "Wrong username or password." : networkMessage(err));
      })
      .then(function () { button.disabled = false; });
  }

  function onLogout() {
    api("POST", "/api/logout").then(function () { loggedOut(""); })
      .catch(function (err) {
        if (err.status === 401) { loggedOut(""); } else { setError($("list-error"), networkMessage(err)); }
      });
  }

  function sessionEnded() { loggedOut("Your session ended. Please log in again."); }

  // ---- live stream ---------------------------------------------------------

  function setConn(mode) {
    var el = $("conn");
    el.className = "conn conn-" + mode;
    el.textContent = mode === "live" ? "Live" : mode === "retry" ? "Reconnecting\u2026" : "Offline";
  }

  function connect() {
    disconnect();
    setConn("retry");
    var source = new EventSource("/api/stream");
    state.stream = source;
    source.onopen = function () { setConn("live"); };
    source.addEventListener("snapshot", function (event) {
      setConn("live");
      try { setAlerts(JSON.parse(event.data)); } catch (e) { refresh(); }
    });
    source.addEventListener("alert", function (event) {
      setConn("live");
      var data = null;
      try { data = JSON.parse(event.data); } catch (e) { data = null; }
      if (data && data.severity === "critical" && (data.action === "raised" || data.action === "escalated")) {
        beep();
      }
      scheduleRefresh();
    });
    source.onerror = function () {
      if (state.stream !== source) { return; }
      setConn("retry");
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (e.g. 401 or 503): see whether the session still stands, then retry.
        state.stream = null;
        checkSession(function () { state.retryTimer = window.setTimeout(connect, RETRY_MS); });
      }
    };
  }

  function disconnect() {
    window.clearTimeout(state.retryTimer);
    window.clearTimeout(state.refreshTimer);
    if (state.stream) { state.stream.close(); state.stream = null; }
  }

  function checkSession(stillValid) {
    api("GET", "/api/me").then(function (data) { state.csrf = data.csrf_token; stillValid(); })
      .catch(function (err) { if (err.status === 401) { sessionEnded(); } else { stillValid(); } });
  }

  function scheduleRefresh() {
    // Several transitions often arrive together: one fetch for the lot.
    window.clearTimeout(state.refreshTimer);
    state.refreshTimer = window.setTimeout(refresh, 150);
  }

  function refresh() {
    if (!state.user) { return; }
    api("GET", "/api/alerts").then(function (list) { setError($("list-error"), ""); setAlerts(list); })
      .catch(function (err) {
        if (err.status === 401) { sessionEnded(); } else { setError($("list-error"), networkMessage(err)); }
      });
  }

  // ---- rendering -----------------------------------------------------------

  function setAlerts(list) {
    state.alerts = Array.isArray(list) ? list : [];
    render();
    updateRebeep();
  }

  function formatTime(ts) {
    if (typeof ts !== "number" || !isFinite(ts)) { return "unknown"; }
    var date = new Date(ts < 1e12 ? ts * 1000 : ts);
    var sameDay = date.toDateString() === new Date().toDateString();
    var time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    return sameDay ? time : date.toLocaleDateString() + " " + time;
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function fact(list, label, value) {
    list.appendChild(el("dt", "", label));
    list.appendChild(el("dd", "", value));
  }

  function renderAlert(alert) {
    var sev = SEVERITY_LABEL[alert.severity] ? alert.severity : "info";
    var item = el("li", "alert alert-" + sev);
    item.dataset.alertId = alert.alert_id;

    var head = el("div", "alert-head");
    head.appendChild(el("span", "sev sev-" + sev, SEVERITY_LABEL[sev]));
    head.appendChild(el("span", "state state-" + alert.state, STATE_LABEL[alert.state] || String(alert.state)));
    if (alert.escalated) { head.appendChild(el("span", "escalated", "Escalated")); }
    item.appendChild(head);

    item.appendChild(el("h3", "", alert.title || alert.kind || "Alert"));

    var facts = el("dl", "facts");
    fact(facts, "Room", alert.room_id || "\u2014");
    fact(facts, "Raised", formatTime(alert.raised_at));
    if (alert.acknowledged_by) {
      fact(facts, "Acknowledged", alert.acknowledged_by + " at " + formatTime(alert.acknowledged_at));
    }
    fact(facts, "Kind", alert.kind || "\u2014");
    item.appendChild(facts);

    var actions = el("div", "actions");
    if (alert.state === "raised") {
      actions.appendChild(actionButton(alert, "ack", "Acknowledge"));
    }
    if (alert.state !== "resolved") {
      actions.appendChild(actionButton(alert, "resolve", "Resolve"));
    }
    item.appendChild(actions);
    var error = el("p", "error");
    error.setAttribute("role", "alert");
    error.hidden = true;
    item.appendChild(error);
    return item;
  }

  function actionButton(alert, action, label) {
    var button = el("button", "btn " + (action === "ack" ? "btn-primary" : ""), label);
    button.type = "button";
    button.addEventListener("click", function () { openConfirm(alert, action); });
    return button;
  }

  function render() {
    var list = $("alerts");
    while (list.firstChild) { list.removeChild(list.firstChild); }
    state.alerts.forEach(function (alert) { list.appendChild(renderAlert(alert)); });
    $("count").textContent = String(state.alerts.length);
    show($("empty"), state.user !== null && state.alerts.length === 0);
    var critical = state.alerts.some(function (a) { return a.severity === "critical" && a.state === "raised"; });
    document.title = (critical ? "(!) " : "") + "Campus edge - security console";
  }

  // ---- acknowledge / resolve -----------------------------------------------

  function openConfirm(alert, action) {
    state.pending = { alert: alert, action: action };
    var verb = action === "ack" ? "Acknowledge" : "Resolve";
    $("confirm-title").textContent = verb + " alert?";
    $("confirm-text").textContent = verb + " \u201c" + (alert.title || alert.kind) + "\u201d in room " +
      (alert.room_id || "\u2014") + "?";
    $("confirm-ok").textContent = verb;
    $("confirm-note").value = "";
    setError($("confirm-error"), "");
    $("confirm-ok").disabled = false;
    $("confirm").showModal();
    $("confirm-note").focus();
  }

  function onConfirm(event) {
    event.preventDefault();
    var pending = state.pending;
    if (!pending) { $("confirm").close(); return; }
    var ok = $("confirm-ok");
    ok.disabled = true;
    var path = "/api/alerts/" + encodeURIComponent(pending.alert.alert_id) + "/" + pending.action;
    api("POST", path, { note: $("confirm-note").value })
      .then(function () {
        state.pending = null;
        $("confirm").close();
        refresh();
      })
      .catch(function (err) {
        ok.disabled = false;
        if (err.status === 401) { sessionEnded(); return; }
        setError($("confirm-error"), networkMessage(err));
        if (err.status === 409 || err.status === 404) { refresh(); }
      });
  }

  function onCancel() {
    state.pending = null;
    $("confirm").close();
  }

  // ---- sound ---------------------------------------------------------------

  function toggleSound() {
    state.sound = !state.sound;
    var button = $("sound");
    button.textContent = state.sound ? "Sound: on" : "Sound: off";
    button.setAttribute("aria-pressed", String(state.sound));
    button.classList.toggle("btn-on", state.sound);
    if (state.sound) {
      var Ctx = window.AudioContext || window.webkitAudioContext;
      if (!state.audio && Ctx) { state.audio = new Ctx(); }
      if (state.audio && state.audio.state === "suspended") { state.audio.resume(); }
      beep();
    }
    updateRebeep();
  }

  function beep() {
    if (!state.sound || !state.audio) { return; }
    var ctx = state.audio;
    var start = ctx.currentTime + 0.01;
    [0, 0.25].forEach(function (offset) {
      var osc = ctx.createOscillator();
      var gain = ctx.createGain();
      osc.type = "square";
      osc.frequency.value = 880;
      gain.gain.setValueAtTime(0.0001, start + offset);
      gain.gain.exponentialRampToValueAtTime(0.25, start + offset + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.18);
      osc.connect(gain);
      gain.connect(ctx.destination);
      osc.start(start + offset);
      osc.stop(start + offset + 0.2);
    });
  }

  function updateRebeep() {
    window.clearInterval(state.rebeepTimer);
    state.rebeepTimer = 0;
    var waiting = state.alerts.some(function (a) { return a.severity === "critical" && a.state === "raised"; });
    if (state.sound && waiting) { state.rebeepTimer = window.setInterval(beep, REBEEP_MS); }
  }

  // ---- start ---------------------------------------------------------------

  function start() {
    $("login-form").addEventListener("submit", onLogin);
    $("logout").addEventListener("click", onLogout);
    $("sound").addEventListener("click", toggleSound);
    $("confirm-form").addEventListener("submit", onConfirm);
    $("confirm-cancel").addEventListener("click", onCancel);
    $("confirm").addEventListener("cancel", function () { state.pending = null; });
    // Resume a session after a reload: the cookie is HttpOnly, /api/me returns the CSRF token.
    api("GET", "/api/me").then(loggedIn).catch(function (err) {
      loggedOut(err.status === 401 ? "" : networkMessage(err));
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
