/* Audit log (admins): newest entries first, paged, and a check of the hash chain. */
(function () {
  "use strict";

  var C = window.EdgeConsole;
  var $ = C.$;
  var el = C.el;
  var PAGE = 100;
  var nextBefore = null;

  function detailText(detail) {
    if (!detail || typeof detail !== "object") { return ""; }
    return Object.keys(detail).map(function (key) {
      var value = detail[key];
      return key + "=" + (typeof value === "object" ? JSON.stringify(value) : String(value));
    }).join(" ");
  }

  function load(more) {
    var path = "/api/audit?limit=" + PAGE + (more && nextBefore !== null ? "&before_id=" + nextBefore : "");
    C.api("GET", path).then(function (page) {
      C.setError($("audit-error"), "");
      var body = $("audit-rows");
      if (!more) { C.clear(body); }
      (page && page.entries ? page.entries : []).forEach(function (entry) {
        var row = el("li", "row");
        row.appendChild(el("strong", "", entry.action));
        row.appendChild(el("span", "", entry.actor + (entry.target ? " \u2192 " + entry.target : "")));
        row.appendChild(el("span", "muted", C.formatTime(entry.ts)));
        var detail = detailText(entry.detail);
        if (detail) { row.appendChild(el("span", "note muted", detail)); }
        body.appendChild(row);
      });
      nextBefore = page ? page.next_before_id : null;
      C.show($("audit-more"), nextBefore !== null && nextBefore !== undefined);
    }).catch(function (err) { C.setError($("audit-error"), C.networkMessage(err)); });
  }

  function verify() {
    var status = $("audit-status");
    status.textContent = "Checking\u2026";
    C.api("GET", "/api/audit/verify").then(function (result) {
      status.className = result.ok ? "hint result-ok" : "hint result-bad";
      status.textContent = result.ok
        ? "Chain intact: " + result.records + " entries."
        : "Chain BROKEN at entry " + result.broken_at + ": the log was altered.";
    }).catch(function (err) { status.textContent = ""; C.setError($("audit-error"), C.networkMessage(err)); });
  }

  C.register("audit", {
    init: function () {
      $("audit-more").addEventListener("click", function () { load(true); });
      $("audit-verify").addEventListener("click", verify);
    },
    enter: function () { $("audit-status").textContent = ""; load(false); },
    logout: function () { C.clear($("audit-rows")); nextBefore = null; }
  });
}());
