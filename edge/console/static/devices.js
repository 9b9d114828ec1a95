/* Devices: the configured devices and, for operators, their actions, each sent after a confirmation. */
(function () {
  "use strict";

  var C = window.EdgeConsole;
  var $ = C.$;
  var el = C.el;

  /** One form field for one argument, from its JSON schema (enum, integer or string). */
  function field(device, action, name, schema, required) {
    var id = ["arg", device.device_id, action, name].join("-");
    var wrap = el("div", "field");
    var label = el("label", "", name + (required ? "" : " (optional)"));
    label.htmlFor = id;
    wrap.appendChild(label);
    var input;
    if (Array.isArray(schema.enum)) {
      input = el("select");
      schema.enum.forEach(function (value) {
        var option = el("option", "", value);
        option.value = String(value);
        input.appendChild(option);
      });
    } else {
      input = el("input");
      if (schema.type === "integer") {
        input.type = "number";
        input.step = "1";
        input.inputMode = "numeric";
        if (typeof schema.minimum === "number") { input.min = String(schema.minimum); }
        if (typeof schema.maximum === "number") { input.max = String(schema.maximum); }
      } else {
        input.autocapitalize = "none";
        input.spellcheck = false;
        if (typeof schema.maxLength === "number") { input.maxLength = schema.maxLength; }
        if (typeof schema.pattern === "string") { input.pattern = schema.pattern.replace(/^\^|\$$/g, ""); }
      }
      if (schema.default !== undefined) { input.value = String(schema.default); }
    }
    input.id = id;
    input.name = name;
    input.required = required;
    input.dataset.kind = schema.type === "integer" ? "integer" : "string";
    wrap.appendChild(input);
    return wrap;
  }

  function readArgs(form) {
    var args = {};
    Array.prototype.forEach.call(form.querySelectorAll("input, select"), function (input) {
      if (input.value === "" && !input.required) { return; }
      args[input.name] = input.dataset.kind === "integer" ? Number(input.value) : input.value;
    });
    return args;
  }

  function describeArgs(args) {
    return Object.keys(args).map(function (key) { return key + " " + args[key]; }).join(", ");
  }

  function actionForm(device, action, schema, resultNode) {
    var form = el("form", "action-form");
    form.appendChild(el("h4", "", action));
    var props = schema && schema.properties ? schema.properties : {};
    var required = schema && Array.isArray(schema.required) ? schema.required : [];
    Object.keys(props).forEach(function (name) {
      form.appendChild(field(device, action, name, props[name], required.indexOf(name) >= 0));
    });
    var send = el("button", "btn btn-primary", "Send " + action);
    send.type = "submit";
    form.appendChild(send);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var args = readArgs(form);
      var name = device.name || device.device_id;
      C.confirm({
        title: "Send " + action + "?",
        text: "Send \u201c" + action + (Object.keys(args).length ? " (" + describeArgs(args) + ")" : "") +
              "\u201d to " + name + "?",
        ok: "Send",
        note: false,
        run: function () {
          var path = "/api/devices/" + encodeURIComponent(device.device_id) + "/commands";
          return C.api("POST", path, { action: action, args: args }).then(function (result) {
            showResult(resultNode, action, result);
          });
        }
      });
    });
    return form;
  }

  function showResult(node, action, result) {
    var ok = result && result.status === "ok";
    node.className = "result " + (ok ? "result-ok" : "result-bad");
    node.textContent = action + ": " + (result ? result.status : "no answer") +
      (result && result.reason ? " \u2014 " + result.reason : "");
    node.hidden = false;
  }

  function renderDevice(device) {
    var card = el("li", "card device");
    card.dataset.deviceId = device.device_id;
    var head = el("div", "card-head");
    head.appendChild(el("h3", "", device.name || device.device_id));
    head.appendChild(el("span", "muted", device.type + (device.room_id ? " \u00b7 " + device.room_id : "")));
    card.appendChild(head);
    var actions = device.actions || {};
    var names = Object.keys(actions);
    if (!names.length) {
      card.appendChild(el("p", "muted", "Read-only sensor."));
      return card;
    }
    if (!C.can("operator")) {
      card.appendChild(el("p", "muted", "Actions: " + names.join(", ")));
      return card;
    }
    var result = el("p", "result");
    result.setAttribute("role", "status");
    result.hidden = true;
    names.forEach(function (action) { card.appendChild(actionForm(device, action, actions[action], result)); });
    card.appendChild(result);
    return card;
  }

  C.register("devices", {
    init: function () {},
    enter: function () {
      C.show($("devices-hint"), !C.can("operator"));
      C.api("GET", "/api/devices").then(function (devices) {
        C.setError($("devices-error"), "");
        var list = $("devices");
        C.clear(list);
        (Array.isArray(devices) ? devices : []).forEach(function (d) { list.appendChild(renderDevice(d)); });
        if (!list.firstChild) { list.appendChild(el("li", "empty", "No devices are configured.")); }
      }).catch(function (err) { C.setError($("devices-error"), C.networkMessage(err)); });
    },
    logout: function () { C.clear($("devices")); }
  });
}());
