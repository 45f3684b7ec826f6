// SPDX-License-Identifier: Apache-2.0
// Copyright the alertsleuth authors.
//
// The web UI's one script: streams the answer to a question into the page. The form of
// templates/_askbox.html.j2 is posted (as the urlencoded form it is, CSRF token included) to its
// `data-stream` URL, which answers the server-sent events of /api/v1/ask/stream: `evidence` per query,
// `token` per piece of the answer, then `answer` (the whole answer and the session id) or `error`
// ({status, detail}). Everything from the server is inserted as text (textContent), never as HTML.
// The session id is kept in the form's hidden field, so a follow-up question continues the
// conversation; without this script the form posts to /ui/ask and the page comes back with the answer.
"use strict";

(function () {
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function evidenceItem(q) {
    var li = el("li");
    li.appendChild(el("span", "eid", "[" + (q.id || "?") + "]"));
    li.appendChild(document.createTextNode(" " + (q.title || "") + " "));
    li.appendChild(el("code", null, q.promql || ""));
    if (q.error) {
      li.appendChild(document.createTextNode(" "));
      li.appendChild(el("span", "error", q.error));
    }
    return li;
  }

  // One answer being written: its text, its evidence list and its error line.
  function Turn(log) {
    this.node = el("div", "turn assistant streaming");
    this.node.appendChild(el("div", "who", "alertsleuth"));
    this.text = this.node.appendChild(el("div", "text"));
    this.evidence = el("ul", "evidence");
    this.seen = {};
    log.appendChild(this.node);
  }
  Turn.prototype.token = function (text) {
    this.text.appendChild(document.createTextNode(text));
  };
  Turn.prototype.addEvidence = function (q) {
    if (!q || this.seen[q.id]) return;
    this.seen[q.id] = true;
    if (!this.evidence.parentNode) this.node.appendChild(this.evidence);
    this.evidence.appendChild(evidenceItem(q));
  };
  Turn.prototype.error = function (message) {
    this.node.appendChild(el("p", "error", message)).setAttribute("role", "alert");
  };
  Turn.prototype.end = function () {
    this.node.classList.remove("streaming");
  };

  // Calls onEvent(kind, data) for each complete server-sent event read from the response body.
  async function readEvents(response, onEvent) {
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    for (;;) {
      var part = await reader.read();
      if (part.done) break;
      buffer += decoder.decode(part.value, { stream: true }).replace(/\r\n/g, "\n");
      var cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        var block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        var kind = "message";
        var data = [];
        block.split("\n").forEach(function (line) {
          if (line.indexOf("event:") === 0) kind = line.slice(6).trim();
          else if (line.indexOf("data:") === 0) data.push(line.slice(5).replace(/^ /, ""));
        });
        if (!data.length) continue;
        var parsed;
        try {
          parsed = JSON.parse(data.join("\n"));
        } catch (e) {
          continue;
        }
        onEvent(kind, parsed);
      }
    }
  }

  function setup(form) {
    var section = form.closest("section.ask") || document;
    var log = section.querySelector(".conversation");
    var button = form.querySelector("button[type=submit]");
    var field = form.querySelector("textarea[name=question]");
    var sessionField = form.querySelector("input[name=session_id]");
    var busy = false;

    form.addEventListener("submit", async function (event) {
      if (!window.fetch || !window.ReadableStream || !window.TextDecoder) return; // the plain POST
      event.preventDefault();
      var question = field.value.trim();
      if (!question || busy) return;
      busy = true;
      button.disabled = true;
      var old = section.querySelector("#ask-error");
      if (old) old.remove();
      var mine = el("div", "turn user");
      mine.appendChild(el("div", "who", "You"));
      mine.appendChild(el("div", "text", question));
      log.appendChild(mine);
      var turn = new Turn(log);
      var ended = false;
      try {
        var response = await fetch(form.dataset.stream, {
          method: "POST",
          body: new URLSearchParams(new FormData(form)),
          credentials: "same-origin",
          headers: { Accept: "text/event-stream" },
        });
        var type = response.headers.get("content-type") || "";
        if (type.indexOf("text/event-stream") !== 0) {
          turn.error(
            response.status === 403
              ? "The form expired: reload the page and ask again."
              : "The question was not answered (HTTP " + response.status + "): reload the page and sign in again."
          );
        } else {
          await readEvents(response, function (kind, data) {
            if (kind === "token") {
              turn.token(data.text || "");
            } else if (kind === "evidence") {
              turn.addEvidence(data);
            } else if (kind === "answer") {
              ended = true;
              turn.text.textContent = data.answer || "";
              (data.queries || []).forEach(function (q) { turn.addEvidence(q); });
              if (data.session_id) {
                sessionField.value = data.session_id;
                if (location.pathname === "/ui/ask") {
                  history.replaceState(null, "", "/ui/ask?session=" + encodeURIComponent(data.session_id));
                }
              }
              field.value = "";
            } else if (kind === "error") {
              ended = true;
              turn.error("Not answered (" + data.status + "): " + data.detail);
            }
          });
          if (!ended) turn.error("The answer was cut short: ask again.");
        }
      } catch (e) {
        turn.error("The server could not be reached: " + e.message);
      } finally {
        turn.end();
        busy = false;
        button.disabled = false;
        field.focus();
      }
    });
  }

  document.querySelectorAll("form.ask[data-stream]").forEach(setup);

  // The page's own refresh (an investigation under way), held off while a question is being written
  // or answered: a reload would lose it. Without this script, a <noscript> meta refresh does it.
  var every = Number(document.body.dataset.refresh || 0);
  if (every > 0) {
    var reload = function () {
      var typing = Array.prototype.some.call(document.querySelectorAll("form.ask textarea"), function (t) {
        return t.value.trim() !== "" || document.activeElement === t;
      });
      if (typing || document.querySelector(".turn.streaming")) {
        setTimeout(reload, every * 1000);
      } else {
        location.reload();
      }
    };
    setTimeout(reload, every * 1000);
  }
})();
