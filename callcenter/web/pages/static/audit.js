// The recording page: choose the file to hear, click a transcript line to play from there,
// check the files' integrity again, and place or lift a legal hold.
// The audio comes from the audited endpoint (same origin, session cookie); nothing here builds HTML.
(function () {
  "use strict";

  // POST to the API (session cookie); the JSON answer, or the error's message.
  async function postJson(url, payload) {
    var options = { method: "POST", credentials: "same-origin", headers: { Accept: "application/json" } };
    if (payload !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(payload);
    }
    try {
      var response = await fetch(url, options);
      var data = null;
      try {
        data = await response.json();
      } catch (e) {
        data = null;
      }
      if (response.ok) {
        return { ok: true, data: data };
      }
      var known = data && data.error && typeof data.error.message === "string";
      return { ok: false, message: known ? data.error.message : "HTTP " + response.status };
    } catch (e) {
      return { ok: false, message: String(e) };
    }
  }

  // Legal hold: place or lift it through the API with a reason, then show the page again.
  var holdForm = document.getElementById("hold-form");
  if (holdForm) {
    holdForm.addEventListener("submit", async function (event) {
      event.preventDefault();
      var button = document.getElementById("hold-submit");
      var error = document.getElementById("hold-error");
      error.hidden = true;
      button.disabled = true;
      var answer = await postJson(holdForm.dataset.url, { reason: document.getElementById("hold-reason").value });
      if (answer.ok) {
        window.location.reload();
        return;
      }
      error.textContent = (holdForm.dataset.msgFailed || "Failed") + ": " + answer.message;
      error.hidden = false;
      button.disabled = false;
    });
  }

  // Integrity: re-hash the files now; each file row says what was found.
  var verify = document.getElementById("verify-submit");
  if (verify) {
    verify.addEventListener("click", async function () {
      var result = document.getElementById("verify-result");
      verify.disabled = true;
      result.hidden = true;
      var text;
      var answer = await postJson(verify.dataset.url);
      if (answer.ok) {
        var data = answer.data;
        var bad = {};
        data.problems.forEach(function (p) {
          bad[p.kind] = p.problem;
        });
        document.querySelectorAll("#integrity tr.file").forEach(function (row) {
          row.dataset.verified = bad[row.dataset.kind] || (row.dataset.status === "ok" ? "ok" : "skipped");
        });
        var template = data.ok ? verify.dataset.msgOk : verify.dataset.msgBad;
        text = template.replace("{checked}", String(data.checked)).replace("{problems}", String(data.problems.length));
        result.dataset.ok = data.ok ? "yes" : "no";
      } else {
        text = (verify.dataset.msgFailed || "Failed") + ": " + answer.message;
        result.dataset.ok = "error";
      }
      result.textContent = text;
      result.className = result.dataset.ok === "yes" ? "ok" : "error";
      result.hidden = false;
      verify.disabled = false;
    });
  }

  var player = document.getElementById("player");
  if (!player) {
    return;
  }
  var kind = document.getElementById("audio-kind");
  var lines = Array.prototype.slice.call(document.querySelectorAll("li.line[data-start]"));

  function playFrom(seconds) {
    if (!isFinite(seconds) || seconds < 0) {
      return;
    }
    player.currentTime = seconds;
    var started = player.play();
    if (started && typeof started.catch === "function") {
      started.catch(function () {});
    }
  }

  if (kind) {
    kind.addEventListener("change", function () {
      var at = player.currentTime;
      var playing = !player.paused;
      player.src = kind.value;
      if (playing || at > 0) {
        playFrom(at);
      }
    });
  }

  document.querySelectorAll("button.seek").forEach(function (button) {
    button.addEventListener("click", function () {
      playFrom(parseFloat(button.dataset.start));
    });
  });

  player.addEventListener("timeupdate", function () {
    var now = player.currentTime;
    lines.forEach(function (line) {
      var start = parseFloat(line.dataset.start);
      var end = parseFloat(line.dataset.end);
      line.classList.toggle("current", now >= start && now <= end + 0.3);
    });
  });
  player.addEventListener("playing", function () {
    player.dataset.state = "playing";
  });
  player.addEventListener("pause", function () {
    player.dataset.state = "paused";
  });
  player.addEventListener("error", function () {
    player.dataset.state = "error";
  });
})();
