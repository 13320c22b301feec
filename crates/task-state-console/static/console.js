// The console's only script: follows a task's log live (server-sent events) and pauses on
// request. Entries are added as text (textContent), never as HTML.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const log = document.getElementById("log");
  if (!log || log.dataset.live !== "true") {
    return;
  }
  const body = log.tBodies[0];
  const status = document.getElementById("status");
  const state = document.getElementById("live-state");
  const button = document.getElementById("pause");
  let count = Number(log.dataset.count) || 0;
  let source = null;

  function append(entry) {
    const row = body.insertRow();
    const at = row.insertCell();
    at.className = "time";
    at.textContent = entry.at;
    row.insertCell().textContent = entry.message;
    count += 1;
  }

  function stop() {
    if (source) {
      source.close();
      source = null;
    }
  }

  function start() {
    source = new EventSource(log.dataset.events + "?from=" + count);
    source.addEventListener("log", (e) => append(JSON.parse(e.data)));
    source.addEventListener("status", (e) => { status.textContent = e.data; });
    source.addEventListener("end", (e) => {
      stop();
      state.textContent = e.data === "deleted" ? "the task was deleted" : "final status: " + e.data;
      button.hidden = true;
    });
    state.textContent = "following";
    button.textContent = "Pause";
  }

  button.addEventListener("click", () => {
    if (source) {
      stop();
      state.textContent = "paused";
      button.textContent = "Resume";
    } else {
      start();
    }
  });
  start();
});
