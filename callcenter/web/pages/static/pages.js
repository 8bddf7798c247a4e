// OPD pages: log in, log out, the status filter and the ticket actions, all through the JSON API.
// Data from the server is only ever set with textContent; nothing is built from HTML strings.
(function () {
  "use strict";

  var body = document.body;

  function failureText(status, data) {
    var error = data && data.error;
    var text = error && typeof error.message === "string" ? error.message : "HTTP " + status;
    if (error && Array.isArray(error.details)) {
      var parts = [];
      error.details.forEach(function (d) {
        if (d && typeof d.message === "string") {
          parts.push(typeof d.field === "string" ? d.field + ": " + d.message : d.message);
        }
      });
      if (parts.length) {
        text += " (" + parts.join("; ") + ")";
      }
    }
    return (body.dataset.msgFailed || "Failed") + ": " + text;
  }

  function show(element, text) {
    element.textContent = text;
    element.hidden = false;
  }

  async function send(method, url, payload) {
    var options = { method: method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (payload !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(payload);
    }
    var response;
    try {
      response = await fetch(url, options);
    } catch (e) {
      return { ok: false, message: body.dataset.msgNetwork || String(e) };
    }
    var data = null;
    try {
      data = await response.json();
    } catch (e) {
      data = null;
    }
    return {
      ok: response.ok,
      status: response.status,
      retryAfter: parseInt(response.headers.get("Retry-After") || "", 10),
      message: response.ok ? "" : failureText(response.status, data),
      data: data,
    };
  }

  function setupLogin() {
    var form = document.getElementById("login-form");
    if (!form) {
      return;
    }
    var error = document.getElementById("login-error");
    var submit = document.getElementById("login-submit");
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      error.hidden = true;
      submit.disabled = true;
      var label = submit.textContent;
      submit.textContent = form.dataset.msgBusy || label;
      var result = await send("POST", "/api/v1/session", {
        username: document.getElementById("username").value,
        password: document.getElementById("password").value,
      });
      if (result.ok) {
        var next = form.dataset.next || "/opd";
        window.location.assign(next.charAt(0) === "/" && next.charAt(1) !== "/" ? next : "/opd");
        return;
      }
      submit.disabled = false;
      submit.textContent = label;
      show(error, loginFailure(form, result));
    });
  }

  // The login page's own words for the two refusals a person meets; others as the API says.
  function loginFailure(form, result) {
    if (result.status === 401 && form.dataset.msgWrong) {
      return form.dataset.msgWrong;
    }
    if (result.status === 429 && form.dataset.msgThrottled) {
      var minutes = isFinite(result.retryAfter) ? Math.max(1, Math.ceil(result.retryAfter / 60)) : 15;
      return form.dataset.msgThrottled.replace("{minutes}", String(minutes));
    }
    return result.message;
  }

  function setupLogout() {
    var button = document.getElementById("logout");
    if (!button) {
      return;
    }
    button.addEventListener("click", async function () {
      button.disabled = true;
      await send("DELETE", "/api/v1/session");
      window.location.assign("/login");
    });
  }

  function setupFilter() {
    var select = document.getElementById("status-filter");
    if (select && select.form) {
      select.addEventListener("change", function () {
        select.form.submit();
      });
    }
  }

  var ENDPOINTS = { transition: "/transitions", comment: "/comments", escalate: "/escalate" };

  function setupActions() {
    var section = document.getElementById("actions");
    if (!section) {
      return;
    }
    var note = document.getElementById("action-note");
    var reason = document.getElementById("action-reason");
    var error = document.getElementById("action-error");
    var buttons = section.querySelectorAll("button[data-action]");

    function busy(on) {
      buttons.forEach(function (b) {
        b.disabled = on;
      });
    }

    function required(field, message) {
      // Client-side check first (a blank field); the server checks again and its answer is shown.
      field.required = true;
      var valid = field.checkValidity();
      field.required = valid ? false : true;
      if (!valid) {
        show(error, message);
        field.focus();
      }
      return valid;
    }

    buttons.forEach(function (button) {
      button.addEventListener("click", async function () {
        error.hidden = true;
        var action = button.dataset.action;
        var kind = button.dataset.kind;
        var payload = { note: note.value };
        if (action === "reject" && reason) {
          if (!required(reason, section.dataset.msgReasonRequired)) {
            return;
          }
          payload.reason = reason.value;
        }
        if (action === "comment" && !required(note, section.dataset.msgNoteRequired)) {
          return;
        }
        if (kind === "transition") {
          payload.to = button.dataset.to;
        }
        busy(true);
        var label = button.textContent;
        button.textContent = section.dataset.msgBusy || label;
        var result = await send("POST", section.dataset.api + ENDPOINTS[kind], payload);
        if (result.ok) {
          window.location.reload();
          return;
        }
        button.textContent = label;
        busy(false);
        show(error, result.message);
      });
    });
    [note, reason].forEach(function (field) {
      if (field) {
        field.addEventListener("input", function () {
          field.required = false;
        });
      }
    });
  }

  setupLogin();
  setupLogout();
  setupFilter();
  setupActions();
})();
