/* Alerts: the live list over SSE with an optional beep, recent history, and one alert's detail. */
(function () {
  "use strict";

  var C = window.EdgeConsole;
  var $ = C.$;
  var el = C.el;
  var SEVERITY_LABEL = { critical: "Critical", warning: "Warning", info: "Info" };
  var STATE_LABEL = { raised: "Raised", acknowledged: "Acknowledged", resolved: "Resolved" };
  var ACTION_LABEL = { raised: "Raised", acknowledged: "Acknowledged", resolved: "Resolved",
                       escalated: "Escalated", snapshot: "Snapshot attached" };
  var REBEEP_MS = 30000; // repeat the beep while a critical alert is still unacknowledged
  var RETRY_MS = 5000;
  var HISTORY_PAGE = 50;

  var state = {
    stream: null, retryTimer: 0, refreshTimer: 0, refreshDirty: false,
    sound: false, audio: null, rebeepTimer: 0,
    alerts: [],
    nextBefore: null,  // history paging
    detailId: null     // the alert shown in the detail view
  };

  function sev(alert) { return SEVERITY_LABEL[alert.severity] ? alert.severity : "info"; }

  // ---- live stream ---------------------------------------------------------

  function setConn(mode) {
    var node = $("conn");
    node.className = "conn conn-" + mode;
    node.textContent = mode === "live" ? "Live" : mode === "retry" ? "Reconnecting\u2026" : "Offline";
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
      if (data && data.alert_id === state.detailId) { loadDetail(state.detailId); }
      scheduleRefresh();
    });
    source.onerror = function () {
      if (state.stream !== source) { return; }
      setConn("retry");
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (e.g. 401 or 503): see whether the session still stands, then retry.
        state.stream = null;
        C.checkSession(function () { state.retryTimer = window.setTimeout(connect, RETRY_MS); });
      }
    };
  }

  function disconnect() {
    window.clearTimeout(state.retryTimer);
    window.clearTimeout(state.refreshTimer);
    state.refreshTimer = 0;
    state.refreshDirty = false;
    if (state.stream) { state.stream.close(); state.stream = null; }
  }

  function scheduleRefresh() {
    // The first transition is fetched at once (a guard waits for it); more arriving within
    // 150 ms share one fetch at the end of that window.
    if (state.refreshTimer) { state.refreshDirty = true; return; }
    refresh();
    state.refreshTimer = window.setTimeout(function () {
      state.refreshTimer = 0;
      if (state.refreshDirty) { state.refreshDirty = false; scheduleRefresh(); }
    }, 150);
  }

  function refresh() {
    if (!C.user) { return; }
    C.api("GET", "/api/alerts").then(function (list) { C.setError($("list-error"), ""); setAlerts(list); })
      .catch(function (err) { C.setError($("list-error"), C.networkMessage(err)); });
    loadHistory(false);
  }

  // ---- open alerts ---------------------------------------------------------

  function setAlerts(list) {
    state.alerts = Array.isArray(list) ? list : [];
    render();
    updateRebeep();
  }

  function chips(alert) {
    var head = el("div", "alert-head");
    head.appendChild(el("span", "sev sev-" + sev(alert), SEVERITY_LABEL[sev(alert)]));
    head.appendChild(el("span", "state state-" + alert.state, STATE_LABEL[alert.state] || String(alert.state)));
    if (alert.escalated) { head.appendChild(el("span", "escalated", "Escalated")); }
    return head;
  }

  function facts(alert) {
    var list = el("dl", "facts");
    C.fact(list, "Room", alert.room_id || "\u2014");
    C.fact(list, "Raised", C.formatTime(alert.raised_at));
    if (alert.acknowledged_by) {
      C.fact(list, "Acknowledged", alert.acknowledged_by + " at " + C.formatTime(alert.acknowledged_at));
    }
    if (alert.resolved_by) {
      C.fact(list, "Resolved", alert.resolved_by + " at " + C.formatTime(alert.resolved_at));
    }
    if (alert.camera_id) { C.fact(list, "Camera", alert.camera_id); }
    C.fact(list, "Kind", alert.kind || "\u2014");
    return list;
  }

  function actions(alert) {
    var row = el("div", "actions");
    if (!C.can("security")) { return row; }
    if (alert.state === "raised") { row.appendChild(actionButton(alert, "ack", "Acknowledge")); }
    if (alert.state !== "resolved") { row.appendChild(actionButton(alert, "resolve", "Resolve")); }
    return row;
  }

  function renderAlert(alert) {
    var item = el("li", "alert alert-" + sev(alert));
    item.dataset.alertId = alert.alert_id;
    item.appendChild(chips(alert));
    var title = el("a", "alert-title", alert.title || alert.kind || "Alert");
    title.href = "#alert/" + encodeURIComponent(alert.alert_id);
    var heading = el("h3");
    heading.appendChild(title);
    item.appendChild(heading);
    item.appendChild(facts(alert));
    item.appendChild(actions(alert));
    return item;
  }

  function actionButton(alert, action, label) {
    var button = el("button", "btn " + (action === "ack" ? "btn-primary" : ""), label);
    button.type = "button";
    button.addEventListener("click", function () {
      C.confirm({
        title: label + " alert?",
        text: label + " \u201c" + (alert.title || alert.kind) + "\u201d in room " + (alert.room_id || "\u2014") + "?",
        ok: label,
        note: true,
        run: function (note) {
          var path = "/api/alerts/" + encodeURIComponent(alert.alert_id) + "/" + action;
          return C.api("POST", path, { note: note }).then(function () {
            refresh();
            if (state.detailId === alert.alert_id) { loadDetail(alert.alert_id); }
          });
        },
        failed: function (err) { if (err.status === 409 || err.status === 404) { refresh(); } }
      });
    });
    return button;
  }

  function render() {
    var list = $("alerts");
    C.clear(list);
    state.alerts.forEach(function (alert) { list.appendChild(renderAlert(alert)); });
    $("count").textContent = String(state.alerts.length);
    $("tab-count").textContent = String(state.alerts.length);
    C.show($("empty"), C.user !== null && state.alerts.length === 0);
    var critical = state.alerts.some(function (a) { return a.severity === "critical" && a.state === "raised"; });
    $("tab-count").classList.toggle("count-critical", critical);
    document.title = (critical ? "(!) " : "") + "Campus edge - security console";
  }

  // ---- history -------------------------------------------------------------

  function loadHistory(more) {
    var query = "/api/alerts/history?limit=" + HISTORY_PAGE;
    if (more && state.nextBefore !== null) { query += "&before_seq=" + state.nextBefore; }
    C.api("GET", query).then(function (page) {
      var list = $("history");
      if (!more) { C.clear(list); }
      (page && page.alerts ? page.alerts : []).forEach(function (alert) {
        var row = el("li", "row row-" + sev(alert));
        var link = el("a", "", alert.title || alert.kind || "Alert");
        link.href = "#alert/" + encodeURIComponent(alert.alert_id);
        row.appendChild(el("span", "sev sev-" + sev(alert), SEVERITY_LABEL[sev(alert)]));
        row.appendChild(link);
        row.appendChild(el("span", "muted", (STATE_LABEL[alert.state] || alert.state) + " \u00b7 " +
          (alert.room_id || "\u2014") + " \u00b7 " + C.formatTime(alert.raised_at)));
        list.appendChild(row);
      });
      state.nextBefore = page ? page.next_before_seq : null;
      C.show($("history-more"), state.nextBefore !== null && state.nextBefore !== undefined);
    }).catch(function (err) { C.setError($("list-error"), C.networkMessage(err)); });
  }

  // ---- one alert -----------------------------------------------------------

  function loadDetail(alertId) {
    var base = "/api/alerts/" + encodeURIComponent(alertId);
    Promise.all([C.api("GET", base), C.api("GET", base + "/history")]).then(function (both) {
      if (state.detailId !== alertId) { return; }
      C.setError($("alert-error"), "");
      renderDetail(both[0], both[1] || []);
    }).catch(function (err) {
      if (state.detailId === alertId) { C.setError($("alert-error"), C.networkMessage(err)); }
    });
  }

  function renderDetail(alert, history) {
    var box = $("alert-detail");
    C.clear(box);
    var card = el("article", "alert alert-" + sev(alert));
    card.appendChild(chips(alert));
    card.appendChild(el("h2", "", alert.title || alert.kind || "Alert"));
    card.appendChild(facts(alert));
    var snapshotId = alert.detail && typeof alert.detail.snapshot_id === "string" ? alert.detail.snapshot_id : "";
    if (snapshotId && C.can("security")) {
      var img = el("img", "still");
      img.alt = "Blurred snapshot from camera " + (alert.camera_id || "");
      img.src = "/api/snapshots/" + encodeURIComponent(snapshotId);
      card.appendChild(img);
    }
    card.appendChild(actions(alert));
    box.appendChild(card);
    box.appendChild(el("h3", "section-head", "History"));
    var list = el("ol", "rows");
    history.forEach(function (step) {
      var row = el("li", "row");
      row.appendChild(el("strong", "", ACTION_LABEL[step.action] || step.action));
      row.appendChild(el("span", "muted", C.formatTime(step.ts) + " \u00b7 " + (step.actor || "")));
      if (step.note) { row.appendChild(el("span", "note", step.note)); }
      list.appendChild(row);
    });
    box.appendChild(list);
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

  // ---- registration --------------------------------------------------------

  C.register("alerts", {
    init: function () {
      $("sound").addEventListener("click", toggleSound);
      $("history-more").addEventListener("click", function () { loadHistory(true); });
    },
    // The stream runs whatever view is shown: the count and the beep must stay live.
    login: function () { connect(); loadHistory(false); },
    logout: function () {
      disconnect();
      setConn("off");
      state.alerts = [];
      state.detailId = null;
      render();
      updateRebeep();
    },
    enter: function () { state.detailId = null; }
  });

  C.register("alert", {
    enter: function (alertId) {
      state.detailId = alertId;
      C.clear($("alert-detail"));
      loadDetail(alertId);
    },
    leave: function () { state.detailId = null; }
  });
}());
