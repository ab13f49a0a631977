// Wallboard: one tile per agent, kept current by server-sent events from the monitor.
// Plain browser JavaScript, no build step and nothing loaded from elsewhere.
(function () {
  "use strict";

  var page = new URLSearchParams(window.location.search);
  var query = new URLSearchParams();
  ["division", "queue", "token"].forEach(function (name) {
    page.getAll(name).forEach(function (value) { if (value) { query.append(name, value); } });
  });
  var suffix = query.toString() ? "?" + query.toString() : "";

  var agents = new Map();      // id -> agent record as the server sends it
  var tiles = new Map();       // id -> <li>
  var offsetMs = 0;            // server clock minus browser clock (the daemon may run simulated time)
  var pending = false;

  var list = document.getElementById("tiles");
  var connection = document.getElementById("connection");

  function words(status) {
    if (!status) { return "Unknown"; }
    return status.toLowerCase().split("_").map(function (w) {
      return w.charAt(0).toUpperCase() + w.slice(1);
    }).join(" ");
  }

  function serverNow() { return Date.now() + offsetMs; }

  function sync(nowMs) {
    if (typeof nowMs === "number") { offsetMs = nowMs - Date.now(); }
  }

  // What a tile shows first: the routing status while on queue, the presence otherwise.
  function primary(agent) {
    if (agent.presence === "ON_QUEUE" && agent.routing) {
      return { status: agent.routing, since: agent.routing_since };
    }
    if (agent.presence) { return { status: agent.presence, since: agent.presence_since }; }
    return { status: agent.routing, since: agent.routing_since };
  }

  function clock(ms) {
    var total = Math.max(0, Math.floor(ms / 1000));
    var h = Math.floor(total / 3600);
    var m = Math.floor(total / 60) % 60;
    var s = total % 60;
    return h + ":" + (m < 10 ? "0" : "") + m + ":" + (s < 10 ? "0" : "") + s;
  }

  function statusClass(status) { return "st-" + String(status || "unknown").toLowerCase(); }

  function tileFor(id) {
    var li = tiles.get(id);
    if (li) { return li; }
    li = document.createElement("li");
    li.className = "tile";
    li.dataset.agent = id;
    li.innerHTML =
      '<div class="name"></div>' +
      '<div class="primary"><span class="status"></span><span class="time" aria-label="time in status"></span></div>' +
      '<div class="detail"></div>' +
      '<div class="stuck-label"></div>';
    tiles.set(id, li);
    return li;
  }

  function paint(agent, li) {
    var main = primary(agent);
    var stuck = agent.stuck && agent.stuck.length > 0;
    li.className = "tile " + statusClass(main.status) + (stuck ? " stuck" : "");
    li.dataset.status = main.status || "";
    li.dataset.since = main.since == null ? "" : String(main.since);
    li.querySelector(".name").textContent = agent.name;
    li.querySelector(".status").textContent = words(main.status);
    li.querySelector(".detail").textContent =
      "Presence: " + words(agent.presence) + " · Routing: " + words(agent.routing);
    li.querySelector(".stuck-label").textContent = stuck ? "⚠ Stuck: " + agent.stuck.join(", ") : "";
    li.setAttribute("aria-label", agent.name + ", " + words(main.status) + (stuck ? ", stuck" : ""));
  }

  function order(a, b) {
    var sa = a.stuck && a.stuck.length ? 0 : 1;
    var sb = b.stuck && b.stuck.length ? 0 : 1;
    if (sa !== sb) { return sa - sb; }
    var pa = primary(a).since, pb = primary(b).since;
    pa = pa == null ? Infinity : pa;
    pb = pb == null ? Infinity : pb;
    if (pa !== pb) { return pa - pb; }        // longest in status first
    return a.name.localeCompare(b.name);
  }

  function counts(listId, values) {
    var target = document.getElementById(listId);
    var tally = new Map();
    values.forEach(function (v) { var k = v || "UNKNOWN"; tally.set(k, (tally.get(k) || 0) + 1); });
    var entries = Array.from(tally.entries()).sort(function (x, y) {
      return y[1] - x[1] || x[0].localeCompare(y[0]);
    });
    target.replaceChildren.apply(target, entries.map(function (entry) {
      var li = document.createElement("li");
      li.className = statusClass(entry[0]);
      li.dataset.status = entry[0];
      li.append(words(entry[0]));
      var b = document.createElement("b");
      b.textContent = String(entry[1]);
      li.append(b);
      return li;
    }));
  }

  function render() {
    pending = false;
    var shown = Array.from(agents.values()).sort(order);
    var seen = new Set();
    shown.forEach(function (agent) {
      var li = tileFor(agent.id);
      paint(agent, li);
      list.appendChild(li);  // appending an attached node moves it: this is the sort
      seen.add(agent.id);
    });
    tiles.forEach(function (li, id) { if (!seen.has(id)) { li.remove(); tiles.delete(id); } });
    counts("presence-counts", shown.map(function (a) { return a.presence; }));
    counts("routing-counts", shown.map(function (a) { return a.routing; }));
    var stuck = shown.filter(function (a) { return a.stuck && a.stuck.length; }).length;
    document.getElementById("summary").textContent =
      shown.length + " agents" + (stuck ? " · " + stuck + " stuck" : "");
    document.getElementById("empty").hidden = shown.length > 0;
    tick();
  }

  function schedule() {
    if (!pending) { pending = true; window.setTimeout(render, 100); }
  }

  function tick() {
    var now = serverNow();
    tiles.forEach(function (li) {
      var since = li.dataset.since;
      li.querySelector(".time").textContent = since ? clock(now - Number(since)) : "";
    });
  }

  function fillSelect(id, values, chosen) {
    var select = document.getElementById(id);
    select.replaceChildren(new Option("All", ""));
    values.forEach(function (v) { select.add(new Option(v, v, false, v === chosen)); });
    if (chosen && values.indexOf(chosen) < 0) { select.add(new Option(chosen, chosen, true, true)); }
  }

  function applySnapshot(data) {
    sync(data.now_ms);
    agents = new Map(data.agents.map(function (a) { return [a.id, a]; }));
    fillSelect("division-filter", data.divisions, page.get("division") || "");
    fillSelect("queue-filter", data.queues, page.get("queue") || "");
    schedule();
  }

  function applyTransition(change) {
    sync(change.now_ms);
    var agent = agents.get(change.agent_id);
    if (!agent) { return; }
    var field = change.kind === "presence" ? "presence" : "routing";
    var since = agent[field + "_since"];
    if (since != null && change.since_ms < since) { return; }  // older than what is shown
    agent[field] = change.value;
    agent[field + "_since"] = change.since_ms;
    schedule();
  }

  document.getElementById("filters").addEventListener("change", function () {
    var next = new URLSearchParams();
    ["division", "queue"].forEach(function (name) {
      var value = document.getElementById(name + "-filter").value;
      if (value) { next.set(name, value); }
    });
    if (page.get("token")) { next.set("token", page.get("token")); }
    window.location.search = next.toString();
  });

  function connect() {
    var source = new EventSource("wallboard/events" + suffix);
    source.addEventListener("open", function () {
      connection.textContent = "Live";
      connection.className = "connection live";
    });
    source.addEventListener("error", function () {
      connection.textContent = "Reconnecting…";
      connection.className = "connection lost";
    });
    source.addEventListener("snapshot", function (e) { applySnapshot(JSON.parse(e.data)); });
    source.addEventListener("transition", function (e) { applyTransition(JSON.parse(e.data)); });
  }

  fetch("wallboard/state" + suffix, { cache: "no-store" })
    .then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    })
    .then(applySnapshot)
    .catch(function (err) {
      connection.textContent = "Cannot load agents: " + err.message;
      connection.className = "connection lost";
    })
    .then(connect);

  window.setInterval(tick, 1000);
})();
