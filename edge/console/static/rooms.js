/* Rooms (occupancy, readings, device status) and cameras (health, blurred still), polled while shown. */
(function () {
  "use strict";

  var C = window.EdgeConsole;
  var $ = C.$;
  var el = C.el;
  var ROOMS_EVERY_MS = 5000;
  var CAMERAS_EVERY_MS = 10000;

  function onlineChip(online) {
    var label = online === true ? "Online" : online === false ? "Offline" : "No report";
    var mode = online === true ? "on" : online === false ? "off" : "unknown";
    return el("span", "dot dot-" + mode, label);
  }

  function formatValue(reading) {
    var value = typeof reading.value === "number" ? Math.round(reading.value * 10) / 10 : reading.value;
    return String(value) + (reading.unit ? " " + reading.unit : "");
  }

  /** A view that fetches one list now and then every `every` ms while it is shown. */
  function polled(name, path, every, render) {
    var timer = 0;
    var errorNode = null;
    function load() {
      C.api("GET", path).then(function (list) {
        C.setError(errorNode, "");
        render(Array.isArray(list) ? list : []);
      }).catch(function (err) { C.setError(errorNode, C.networkMessage(err)); });
    }
    C.register(name, {
      init: function () { errorNode = $(name + "-error"); },
      enter: function () {
        load();
        window.clearInterval(timer);
        timer = window.setInterval(load, every);
      },
      leave: function () { window.clearInterval(timer); timer = 0; },
      logout: function () { window.clearInterval(timer); timer = 0; C.clear($(name)); }
    });
  }

  function renderRoom(room) {
    var card = el("li", "card room");
    card.dataset.roomId = room.room_id;
    var head = el("div", "card-head");
    head.appendChild(el("h3", "", room.name || room.room_id));
    var occupancy = room.occupancy || {};
    var count = typeof occupancy.count === "number" ? String(occupancy.count) : "\u2014";
    var people = el("span", "big", count);
    people.title = "People seen by the room's cameras";
    head.appendChild(people);
    card.appendChild(head);

    var facts = el("dl", "facts");
    (room.readings || []).forEach(function (reading) {
      C.fact(facts, reading.metric + " (" + reading.device_id + ")", formatValue(reading));
    });
    if (!facts.firstChild) { C.fact(facts, "Readings", "none yet"); }
    card.appendChild(facts);

    var devices = el("ul", "plain");
    (room.devices || []).forEach(function (device) {
      var row = el("li", "device-row");
      row.appendChild(el("span", "", device.name || device.device_id));
      row.appendChild(onlineChip(device.online));
      if (device.online === false && device.reason) { row.appendChild(el("span", "muted", device.reason)); }
      devices.appendChild(row);
    });
    card.appendChild(devices);
    return card;
  }

  function renderCamera(camera) {
    var card = el("li", "card camera");
    card.dataset.cameraId = camera.camera_id;
    var head = el("div", "card-head");
    head.appendChild(el("h3", "", camera.name || camera.camera_id));
    head.appendChild(onlineChip(camera.online));
    card.appendChild(head);
    var facts = el("dl", "facts");
    C.fact(facts, "Room", camera.room_id || "\u2014");
    C.fact(facts, "Frames/s", typeof camera.input_fps === "number" ? String(camera.input_fps) : "\u2014");
    C.fact(facts, "Analysed/s", typeof camera.detect_fps === "number" ? String(camera.detect_fps) : "\u2014");
    if (camera.last_error) { C.fact(facts, "Problem", camera.last_error); }
    card.appendChild(facts);
    if (C.can("security") && camera.online) {
      var img = el("img", "still");
      img.alt = "Latest blurred still of " + (camera.name || camera.camera_id);
      img.loading = "lazy";
      // A new query string per refresh: the still is served no-store, this only defeats <img> reuse.
      img.src = "/api/cameras/" + encodeURIComponent(camera.camera_id) + "/still?t=" + Date.now();
      img.addEventListener("error", function () {
        img.replaceWith(el("p", "muted", "No blurred still available."));
      });
      card.appendChild(img);
    }
    return card;
  }

  function renderList(id, items, render, emptyText) {
    var list = $(id);
    C.clear(list);
    items.forEach(function (item) { list.appendChild(render(item)); });
    if (!items.length) { list.appendChild(el("li", "empty", emptyText)); }
  }

  function showUplink() {
    var node = $("uplink");
    C.api("GET", "/api/uplink").then(function (up) {
      if (!up || !up.configured) { node.hidden = true; return; }
      var waiting = typeof up.backlog === "number" ? up.backlog : 0;
      node.className = "uplink " + (up.connected ? "result-ok" : "result-bad");
      node.textContent = "Campus platform: " + (up.connected ? "connected" : "NOT connected") +
        " \u00b7 " + waiting + " message" + (waiting === 1 ? "" : "s") + " waiting on this gateway" +
        (up.last_puback_at ? " \u00b7 last delivery " + C.formatTime(up.last_puback_at) : "");
      node.hidden = false;
    }).catch(function () { node.hidden = true; });
  }

  polled("rooms", "/api/rooms", ROOMS_EVERY_MS, function (rooms) {
    renderList("rooms", rooms, renderRoom, "No rooms are configured on this gateway.");
    showUplink();
  });
  polled("cameras", "/api/cameras", CAMERAS_EVERY_MS, function (cameras) {
    renderList("cameras", cameras, renderCamera, "No cameras are configured on this gateway.");
  });
}());
