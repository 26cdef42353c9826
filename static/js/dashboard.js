// Live dashboard: a websocket says "fresh figures are cached", the page re-fetches them with htmx.
// Without cross-process channels (or when the socket fails) the figures poll every 10 s instead.
(function () {
  "use strict";
  const root = document.querySelector("[data-dashboard]");
  if (!root) return;
  const refresh = () => {
    const figures = document.getElementById("dashboard-figures");
    if (figures && window.htmx) window.htmx.trigger(figures, "refresh");
  };
  let poller = null;
  const poll = () => {
    if (!poller) poller = window.setInterval(refresh, 10000);
  };
  if (root.dataset.live !== "ws" || !("WebSocket" in window)) return; // the partial polls by itself
  let failures = 0;
  const connect = () => {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + window.location.host + root.dataset.wsPath);
    socket.onopen = () => { failures = 0; if (poller) { window.clearInterval(poller); poller = null; } };
    socket.onmessage = (event) => {
      try { if (JSON.parse(event.data).type === "dashboard.updated") refresh(); } catch (e) { /* ignore */ }
    };
    socket.onclose = () => {
      failures += 1;
      poll();
      if (failures < 6) window.setTimeout(connect, 2000 * failures);
    };
  };
  connect();
})();
