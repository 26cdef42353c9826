// Live run progress: the server pushes "refresh" over /ws/runs/<id>/ and htmx re-fetches the progress card.
// The socket carries no data (the database is the truth); if it drops, fall back to polling every 2 s.
(function () {
  "use strict";
  function card() { return document.getElementById("run-progress"); }
  var first = card();
  if (!first || first.dataset.ended === "1") return;
  var runId = first.dataset.run;
  var scheme = location.protocol === "https:" ? "wss://" : "ws://";
  var poller = null;
  function refresh() { var el = card(); if (el && el.dataset.ended !== "1") htmx.trigger(el, "run-refresh"); }
  function poll() { if (!poller) poller = setInterval(refresh, 2000); }
  var retries = 0;
  function connect() {
    var socket;
    try { socket = new WebSocket(scheme + location.host + "/ws/runs/" + runId + "/"); } catch (e) { poll(); return; }
    socket.onopen = function () { retries = 0; if (poller) { clearInterval(poller); poller = null; } refresh(); };
    socket.onmessage = refresh;
    socket.onclose = function (event) {
      var el = card();
      if (!el || el.dataset.ended === "1") return;
      poll();
      if (event.code !== 4404 && retries < 5) { retries += 1; setTimeout(connect, 1000 * retries); }
    };
  }
  connect();
})();
