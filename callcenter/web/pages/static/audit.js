// The recording page: choose the file to hear, and click a transcript line to play from there.
// The audio comes from the audited endpoint (same origin, session cookie); nothing here builds HTML.
(function () {
  "use strict";

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
