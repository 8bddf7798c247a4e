// The live pages: the agent console and the supervisor wallboard.
// Everything live arrives over the console WebSocket; every action is a JSON API call with the
// session cookie. Data from the server is only ever set with textContent.
(function () {
  "use strict";

  var root = document.getElementById("live");
  if (!root) {
    return;
  }
  var words = root.dataset;
  var body = document.body;

  function $(id) {
    return document.getElementById(id);
  }

  function text(element, value) {
    element.textContent = value === null || value === undefined || value === "" ? "—" : String(value);
  }

  function stateName(state) {
    if (!state) {
      return words.msgLoggedOut || "—";
    }
    return words["state" + state.charAt(0).toUpperCase() + state.slice(1)] || state;
  }

  function clear(element) {
    while (element.firstChild) {
      element.removeChild(element.firstChild);
    }
  }

  function item(list, value) {
    var li = document.createElement("li");
    li.textContent = value;
    list.appendChild(li);
    return li;
  }

  function noneItem(list) {
    item(list, words.msgNone || "—").className = "muted";
  }

  async function api(method, url, payload) {
    var options = { method: method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (payload !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(payload);
    }
    var response, data = null;
    try {
      response = await fetch(url, options);
    } catch (e) {
      return { ok: false, message: body.dataset.msgNetwork || String(e) };
    }
    try {
      data = await response.json();
    } catch (e) {
      data = null;
    }
    var message = "";
    if (!response.ok) {
      var error = data && data.error;
      message = (body.dataset.msgFailed || "Failed") + ": " +
        (error && typeof error.message === "string" ? error.message : "HTTP " + response.status);
    }
    return { ok: response.ok, data: data, message: message };
  }

  function showError(element, message) {
    element.textContent = message;
    element.hidden = !message;
  }

  // ---- the socket, reconnecting with backoff ------------------------------------------------
  function connect(onMessage) {
    var delay = 1000;
    var state = $("socket-state");
    function open() {
      var scheme = location.protocol === "https:" ? "wss://" : "ws://";
      var socket = new WebSocket(scheme + location.host + "/api/v1/live/socket");
      socket.onopen = function () {
        delay = 1000;
        text(state, words.msgConnected);
        state.dataset.connected = "true";
      };
      socket.onmessage = function (event) {
        var message;
        try {
          message = JSON.parse(event.data);
        } catch (e) {
          return;
        }
        onMessage(message);
      };
      socket.onclose = function () {
        text(state, words.msgDisconnected);
        state.dataset.connected = "false";
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 30000);
      };
    }
    open();
  }

  // ---- agent console -------------------------------------------------------------------------
  function setupConsole() {
    var current = null; // the call on screen
    var stationError = $("station-error");

    function showStation(data) {
      text($("station-name"), data.station);
      if (!data.logged_in) {
        text($("agent-state"), words.msgLoggedOut);
      } else if (data.paused_reason) {
        text($("agent-state"), stateName("paused") + " (" + data.paused_reason + ")");
      } else {
        text($("agent-state"), stateName("available"));
      }
    }

    async function station(action, payload) {
      var result = await api("POST", "/api/v1/agent/" + action, payload);
      showError(stationError, result.message);
      if (result.ok) {
        showStation(result.data);
      }
    }

    $("station-login").addEventListener("click", function () { station("login"); });
    $("station-logout").addEventListener("click", function () { station("logout"); });
    $("station-resume").addEventListener("click", function () { station("resume"); });
    $("station-pause").addEventListener("click", function () {
      station("pause", { reason: $("pause-reason").value });
    });

    function showPop(pop) {
      if (!current || current.call.linkedid !== pop.call.linkedid) {
        $("classified").textContent = "";
        delete $("classified").dataset.code;
      }
      current = pop;
      $("no-call").hidden = true;
      $("call").hidden = false;
      var stage = $("call-stage");
      text(stage, pop.stage === "ringing" ? words.msgRinging : words.msgAnswered);
      stage.dataset.stage = pop.stage;
      text($("call-number"), pop.call.caller_number);
      text($("call-queue"), pop.call.queue);
      text($("call-wait"), pop.call.wait_seconds);
      var ivr = $("call-ivr");
      clear(ivr);
      Object.keys(pop.ivr || {}).sort().forEach(function (key) {
        var dt = document.createElement("dt");
        var dd = document.createElement("dd");
        dt.textContent = key;
        dd.textContent = String(pop.ivr[key]);
        ivr.appendChild(dt);
        ivr.appendChild(dd);
      });
      if (pop.ticket) {
        showTicket(pop.ticket.number, pop.ticket.status);
      } else {
        $("call-ticket").hidden = true;
        if (pop.draft) {
          var form = $("ticket-form");
          form.hidden = false;
          $("tf-category").value = pop.draft.category || "";
          $("tf-district").value = pop.draft.district || "";
          $("tf-number").value = pop.draft.reporter_number || "";
          if (pop.stage === "ringing") {
            $("tf-summary").value = "";
            $("tf-location").value = "";
          }
        }
      }
      var history = pop.history || { tickets: [], calls: [], marks: {}, block: null };
      var block = $("caller-block");
      block.hidden = !history.block;
      if (history.block) {
        block.textContent = words.msgBlocked + ": " + history.block.reason + " (" + history.block.expires_at + ")";
      }
      var marks = Object.keys(history.marks || {}).sort().map(function (code) { return code + " × " + history.marks[code]; });
      var marksLine = $("caller-marks");
      marksLine.hidden = !marks.length;
      marksLine.textContent = words.msgMarks + ": " + marks.join(", ");
      var tickets = $("history-tickets");
      clear(tickets);
      history.tickets.forEach(function (t) { item(tickets, t.number + " · " + t.status + " · " + t.summary); });
      if (!history.tickets.length) { noneItem(tickets); }
      var calls = $("history-calls");
      clear(calls);
      history.calls.forEach(function (c) { item(calls, (c.started_at || "") + " · " + (c.service || "") + " · " + (c.queue || "")); });
      if (!history.calls.length) { noneItem(calls); }
    }

    function showTicket(number, status) {
      $("ticket-form").hidden = true;
      $("call-ticket").hidden = false;
      var link = $("call-ticket-link");
      link.textContent = number;
      link.href = "/opd/tickets/" + encodeURIComponent(number);
      text($("call-ticket-status"), status);
    }

    $("ticket-form").addEventListener("submit", async function (event) {
      event.preventDefault();
      if (!current || !current.draft) {
        return;
      }
      var payload = {
        summary: $("tf-summary").value,
        channel: current.draft.channel,
        district: $("tf-district").value,
        location_text: $("tf-location").value,
        reporter_number: $("tf-number").value,
        call: {
          system_name: current.call.system_name,
          linkedid: current.call.linkedid,
          caller_number: current.call.caller_number,
        },
      };
      if ($("tf-category").value) {
        payload.category = $("tf-category").value;
      }
      var save = $("tf-save");
      save.disabled = true;
      var result = await api("POST", "/api/v1/tickets", payload);
      save.disabled = false;
      showError($("ticket-error"), result.message);
      if (result.ok) {
        showTicket(result.data.number, result.data.status);
      }
    });

    document.querySelectorAll("[data-classify]").forEach(function (button) {
      button.addEventListener("click", async function () {
        if (!current) {
          return;
        }
        var url = "/api/v1/calls/" + encodeURIComponent(current.call.system_name) + "/" +
          encodeURIComponent(current.call.linkedid) + "/classification";
        var result = await api("POST", url, { code: button.dataset.classify });
        showError($("classify-error"), result.message);
        if (result.ok) {
          $("classified").textContent = words.msgClassified + ": " + button.textContent;
          $("classified").dataset.code = button.dataset.classify;
        }
      });
    });

    $("block-caller").addEventListener("click", async function () {
      if (!current) {
        return;
      }
      var result = await api("POST", "/api/v1/blocks", {
        number: current.call.caller_number,
        reason: $("block-reason").value,
      });
      showError($("classify-error"), result.message);
      if (result.ok) {
        var block = $("caller-block");
        block.hidden = false;
        block.dataset.blocked = "true";
        block.textContent = words.msgBlockDone + ": " + result.data.number + " (" + result.data.expires_at + ")";
      }
    });

    async function loadCallbacks() {
      var result = await api("GET", "/api/v1/callbacks");
      var list = $("callbacks");
      if (!result.ok) {
        return;
      }
      clear(list);
      result.data.items.forEach(function (c) {
        var li = item(list, c.number + " · " + c.queue + " · " + c.created_at + " ");
        li.dataset.callback = c.id;
        [["attempts", words.msgCallBack], ["dihubungi", words.msgReached], ["tidak_diangkat", words.msgNoAnswer]]
          .forEach(function (pair) {
            var button = document.createElement("button");
            button.type = "button";
            button.textContent = pair[1];
            button.dataset.action = pair[0];
            button.addEventListener("click", async function () {
              var done = pair[0] === "attempts"
                ? await api("POST", "/api/v1/callbacks/" + c.id + "/attempts")
                : await api("POST", "/api/v1/callbacks/" + c.id + "/outcome", { outcome: pair[0] });
              showError($("callback-error"), done.message);
              loadCallbacks();
            });
            li.appendChild(button);
          });
      });
      if (!result.data.items.length) { noneItem(list); }
    }

    connect(function (message) {
      if (message.type === "screen_pop") {
        showPop(message);
      } else if (message.type === "agent_state") {
        var label = stateName(message.state);
        text($("agent-state"), message.paused_reason ? label + " (" + message.paused_reason + ")" : label);
      } else if (message.type === "callbacks") {
        loadCallbacks();
      }
    });
    api("GET", "/api/v1/agent").then(function (result) {
      if (result.ok) { showStation(result.data); }
    });
    loadCallbacks();
    setInterval(loadCallbacks, 15000);
  }

  // ---- supervisor wallboard -----------------------------------------------------------------
  function cell(row, value) {
    var td = document.createElement("td");
    text(td, value);
    row.appendChild(td);
    return td;
  }

  function showWallboard(message) {
    text($("wallboard-updated"), new Date(message.at * 1000).toLocaleTimeString());
    var queues = $("queues").tBodies[0];
    var agents = $("agents").tBodies[0];
    var callers = $("waiting-callers");
    clear(queues);
    clear(agents);
    clear(callers);
    var systems = message.state.systems || {};
    Object.keys(systems).sort().forEach(function (name) {
      var system = systems[name];
      system.queues.forEach(function (q) {
        var row = document.createElement("tr");
        row.dataset.queue = q.name;
        cell(row, q.name);
        cell(row, q.waiting_count).dataset.field = "waiting";
        cell(row, Math.round(q.longest_wait));
        cell(row, q.answered);
        cell(row, q.abandoned).dataset.field = "abandoned";
        // Asterisk reports 0% before any call was counted: show nothing rather than a false 0.
        var counted = (q.completed || 0) + (q.abandoned || 0);
        cell(row, counted && q.service_level_perf !== null && q.service_level_perf !== undefined ? q.service_level_perf + "%" : null);
        var states = Object.keys(q.agents_by_state).filter(function (s) { return q.agents_by_state[s]; })
          .map(function (s) { return stateName(s) + ": " + q.agents_by_state[s]; });
        cell(row, states.join(", "));
        queues.appendChild(row);
        q.waiting.forEach(function (c) {
          item(callers, q.name + " · " + c.caller_number + " · " + Math.round(c.wait) + " s").dataset.caller = c.caller_number;
        });
      });
      system.agents.forEach(function (a) {
        var row = document.createElement("tr");
        row.dataset.agent = a.interface;
        row.dataset.state = a.state || "";
        cell(row, a.name || a.interface);
        cell(row, stateName(a.state)).dataset.field = "state";
        cell(row, Math.round(a.time_in_state));
        cell(row, a.paused_reason).dataset.field = "reason";
        var actions = cell(row, "");
        actions.textContent = "";
        if (a.call) {
          [["listen", words.msgListen], ["whisper", words.msgWhisper], ["barge", words.msgBarge]].forEach(function (pair) {
            var button = document.createElement("button");
            button.type = "button";
            button.textContent = pair[1];
            button.dataset.spy = pair[0];
            button.addEventListener("click", async function () {
              var station = a.interface.replace(/^PJSIP\//, "");
              var result = await api("POST", "/api/v1/live/spy", { agent: station, mode: pair[0] });
              showError($("spy-error"), result.message);
            });
            actions.appendChild(button);
          });
        }
        agents.appendChild(row);
      });
    });
    if (!callers.firstChild) { noneItem(callers); }
  }

  function percent(value) {
    return value === null || value === undefined ? null : Math.round(value * 1000) / 10 + "%";
  }

  async function loadToday() {
    var result = await api("GET", "/api/v1/live/today");
    if (!result.ok) {
      return;
    }
    var today = $("today").tBodies[0];
    var staffing = $("staffing").tBodies[0];
    clear(today);
    clear(staffing);
    result.data.queues.forEach(function (q) {
      var row = document.createElement("tr");
      row.dataset.queue = q.name;
      cell(row, q.name);
      cell(row, q.offered).dataset.field = "offered";
      cell(row, q.answered).dataset.field = "answered";
      cell(row, q.abandoned).dataset.field = "abandoned";
      var level = cell(row, percent(q.service_level));
      level.dataset.field = "service_level";
      if (q.service_level !== null && q.service_level < q.target.share) {
        level.className = "below-target";
      }
      cell(row, percent(q.target.share) + " / " + q.target.seconds + " s");
      today.appendChild(row);
      q.staffing.forEach(function (h) {
        var r = document.createElement("tr");
        cell(r, q.name);
        cell(r, String(h.hour).padStart(2, "0") + ":00");
        cell(r, h.calls);
        cell(r, h.agents_needed).dataset.field = "needed";
        cell(r, h.logged_in);
        staffing.appendChild(r);
      });
    });
    var bars = $("per-hour");
    clear(bars);
    var most = Math.max.apply(null, result.data.calls_per_hour.concat([1]));
    result.data.calls_per_hour.forEach(function (count, hour) {
      var bar = document.createElement("div");
      bar.className = "bar";
      bar.style.height = Math.round((count / most) * 100) + "%";
      bar.title = String(hour).padStart(2, "0") + ":00 · " + count;
      bar.dataset.hour = hour;
      bar.dataset.count = count;
      bars.appendChild(bar);
    });
  }

  if (root.dataset.kind === "console") {
    setupConsole();
  } else {
    connect(function (message) {
      if (message.type === "wallboard") {
        showWallboard(message);
      }
    });
    loadToday();
    setInterval(loadToday, 30000);
  }
})();
