// The console's only script: follows a task's log live (server-sent events) and pauses on
// request. Entries are added as text (text nodes), never as HTML.
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

  // The characters the pages show as escapes (src/text.rs, is_hidden): controls but the
  // line feed and the tab, and the bidirectional formatting characters.
  const HIDDEN = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;

  // `text` isolated in a <bdi>, each hidden character written as its escape in a span.
  function shown(text) {
    const bdi = document.createElement("bdi");
    let plain = "";
    for (const c of text) {
      if (!HIDDEN.test(c)) {
        plain += c;
        continue;
      }
      bdi.append(plain);
      plain = "";
      const code = c.codePointAt(0);
      const mark = document.createElement("span");
      mark.className = "ctl";
      mark.title = "U+" + code.toString(16).toUpperCase().padStart(4, "0");
      mark.textContent = "\\u{" + code.toString(16) + "}";
      bdi.append(mark);
    }
    bdi.append(plain);
    return bdi;
  }

  // Characters of a log line shown before "show more" (src/fields.rs, LONG_LINE).
  const LONG_LINE = 1000;

  // A message as the page shows it: past LONG_LINE characters, the rest behind "show more".
  function message(text) {
    const chars = Array.from(text);
    if (chars.length <= LONG_LINE) {
      return [shown(text)];
    }
    const rest = chars.slice(LONG_LINE).join("");
    const more = document.createElement("details");
    more.className = "more";
    const summary = document.createElement("summary");
    summary.textContent = "show more (" + (chars.length - LONG_LINE) + " more characters)";
    more.append(summary, shown(rest));
    return [shown(chars.slice(0, LONG_LINE).join("")), more];
  }

  function append(entry) {
    const row = body.insertRow();
    const at = row.insertCell();
    at.className = "time";
    at.textContent = entry.at;
    row.insertCell().append(...message(entry.message));
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
    source.addEventListener("status", (e) => {
      status.textContent = e.data;
      status.className = "status status-" + e.data;
    });
    source.addEventListener("end", (e) => {
      stop();
      state.textContent = e.data === "deleted" ? "the task was deleted" : "final status: " + e.data;
      button.hidden = true;
    });
    // A refused stream (the console's bound on open streams) is not retried by the browser.
    source.addEventListener("error", () => {
      if (source && source.readyState === EventSource.CLOSED) {
        source = null;
        state.textContent = "not followed: the console streams as many live logs as it may; resume or reload later";
        button.textContent = "Resume";
      }
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
