// engram web app, chat page: asks POST /v1/chat with stream on, reads its server-sent events
// from the response body as they arrive (token, citations, error, done), shows the tokens as
// text (never as HTML) in an aria-live region, then links each cited [n] to its passage in
// the source viewer, and posts 👍/👎 feedback in place. Without it the forms post to /chat.
"use strict";
(function () {
  const thread = document.getElementById("thread");
  const form = document.getElementById("ask");
  if (!thread) return;
  const strings = thread.dataset;
  const MARKER = /\[\^?(\d+(?:\s*[,;]\s*\^?\d+)*)\](?!\()/g;

  // Where a citation opens (the same rule as engram.web.pages.chat.citation_href).
  function citationHref(c, collection) {
    const kind = c.kind || "document";
    if (kind === "document") {
      const span = c.span || [0, 0];
      return "/source/" + encodeURIComponent(c.collection || collection) + "/" +
        encodeURIComponent(c.document) + "?version=" + (c.version || 1) +
        "&start=" + span[0] + "&end=" + span[1];
    }
    if (kind === "conversation") {
      return "/chat/" + encodeURIComponent(c.document) + (c.message_id ? "#m-" + c.message_id : "");
    }
    return null;
  }

  // The answer's text into `element`, each marker naming a citation as [n] links: text
  // nodes and <a> elements only, so nothing the model writes is ever parsed as HTML.
  function renderText(element, text, links) {
    element.textContent = "";
    let position = 0;
    for (const match of text.matchAll(MARKER)) {
      const numbers = match[1].match(/\d+/g).map(Number);
      if (!numbers.some((n) => links.has(n))) continue;
      element.append(text.slice(position, match.index));
      for (const n of numbers) {
        const href = links.get(n);
        if (href) {
          const a = document.createElement("a");
          a.className = "cite";
          a.href = href;
          a.textContent = "[" + n + "]";
          element.append(a);
        } else {
          element.append("[" + n + "]");
        }
      }
      position = match.index + match[0].length;
    }
    element.append(text.slice(position));
  }

  // The numbered sources under an answer; returns n → href for the markers in its text.
  function showCitations(answer, citations, collection) {
    const links = new Map();
    const list = answer.querySelector(".citations");
    for (const c of citations) {
      const href = citationHref(c, collection);
      links.set(c.n, href);
      const item = document.createElement("li");
      const label = "[" + c.n + "] " + (c.title || c.document || "");
      if (href) {
        const a = document.createElement("a");
        a.href = href;
        a.textContent = label;
        item.append(a);
      } else {
        item.append(label);
      }
      const kind = c.kind || "document";
      if (kind !== "document") {
        const badge = document.createElement("span");
        badge.className = "badge";
        badge.textContent = kind === "memory" ? strings.kindMemory : strings.kindConversation;
        item.append(" ", badge);
      }
      if (c.page) {
        const where = document.createElement("span");
        where.className = "muted small";
        where.textContent = strings.page.replace("{n}", c.page);
        item.append(" ", where);
      }
      list.append(item);
    }
    list.hidden = answer.querySelector(".sources-heading").hidden = citations.length === 0;
    return links;
  }

  // The server-sent events of a response body, parsed as they arrive: {type, data}.
  async function* events(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      buffer += decoder.decode(value || new Uint8Array(0), { stream: !done });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let type = "message";
        const data = [];
        for (const line of frame.split("\n")) {
          if (line.startsWith("event:")) type = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (data.length) yield { type, data: JSON.parse(data.join("\n")) };
      }
      if (done) return;
    }
  }

  async function errorOf(response) {
    try {
      const error = (await response.json()).error;
      return error.message + (error.hint ? " — " + error.hint : "");
    } catch (_) {
      return response.status + " " + response.statusText;
    }
  }

  function fromTemplate(id) {
    return document.getElementById(id).content.firstElementChild.cloneNode(true);
  }

  function showError(answer, message) {
    const box = answer.querySelector(".msg-error");
    box.textContent = strings.failed + " " + message;
    box.hidden = false;
  }

  // A conversation just started goes to the top of the list, as the current one.
  function listConversation(id, title) {
    const list = document.getElementById("conversations");
    list.querySelectorAll("[aria-current]").forEach((a) => a.removeAttribute("aria-current"));
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = "/chat/" + encodeURIComponent(id);
    link.textContent = title || strings.untitled;
    link.setAttribute("aria-current", "page");
    item.append(link);
    list.prepend(item);
    const none = document.getElementById("no-conversations");
    if (none) none.remove();
    document.getElementById("chat-heading").textContent = link.textContent;
  }

  async function ask(question, collection, status) {
    const fields = form.elements;
    const empty = document.getElementById("empty-thread");
    if (empty) empty.remove();
    const mine = fromTemplate("chat-user-message");
    mine.querySelector(".msg-text").textContent = question;
    const answer = fromTemplate("chat-answer");
    const textBox = answer.querySelector(".msg-text");
    thread.append(mine, answer);
    let conversation = fields.conversation_id.value;
    try {
      if (!conversation) {
        const created = await engram.api("/v1/conversations", {
          method: "POST",
          body: { user_id: form.dataset.user, title: question.slice(0, 80), metadata: { collection } },
        });
        conversation = fields.conversation_id.value = created.id;
        history.replaceState(null, "", "/chat/" + encodeURIComponent(conversation));
        listConversation(conversation, created.title);
      }
      const response = await fetch("/v1/chat", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "Accept": "text/event-stream", "X-CSRF-Token": engram.csrf() },
        body: JSON.stringify({ question, collection, conversation_id: conversation, stream: true }),
      });
      if (!response.ok) throw new Error(await errorOf(response));
      let text = "", citations = [], failure = null, ok = false, extractive = false;
      for await (const event of events(response)) {
        if (event.type === "token") {
          text += event.data.text || "";
          textBox.append(event.data.text || "");
        } else if (event.type === "citations") {
          citations = event.data.citations || [];
        } else if (event.type === "error") {
          failure = event.data.message + (event.data.hint ? " — " + event.data.hint : "");
        } else if (event.type === "done") {
          ok = Boolean(event.data.ok);
          extractive = Boolean(event.data.extractive);
        }
      }
      // The body ended: the server has appended the turn, so the answer has its message id.
      renderText(textBox, text, showCitations(answer, citations, collection));
      textBox.setAttribute("aria-busy", "false");
      answer.querySelector(".extractive-note").hidden = !extractive;
      if (failure) showError(answer, failure);
      if (ok) {
        const last = await engram.api("/v1/conversations/" + encodeURIComponent(conversation) + "/messages?last=1");
        const message = last.data[0];
        if (message && message.role === "assistant") {
          answer.id = "m-" + message.id;
          const feedback = answer.querySelector("form[data-feedback]");
          feedback.elements.conversation_id.value = conversation;
          feedback.elements.message_id.value = message.id;
          feedback.elements.collection.value = collection;
          feedback.hidden = false;
        }
      }
      status.textContent = ok ? strings.done : "";
      return ok;
    } catch (error) {
      textBox.setAttribute("aria-busy", "false");
      showError(answer, error.message);
      status.textContent = "";
      return false;
    }
  }

  if (form) {
    let busy = false;
    const fields = form.elements;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (busy) return;
      const question = fields.question.value.trim();
      if (!question) {
        fields.question.focus();
        return;
      }
      busy = true;
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      const status = document.getElementById("chat-status");
      status.textContent = strings.thinking;
      fields.question.value = "";
      try {
        const sent = await ask(question, fields.collection.value, status);
        if (!sent && !fields.question.value) fields.question.value = question; // to try again
      } finally {
        busy = false;
        button.disabled = false;
        fields.question.focus();
      }
    });
    // Enter sends; Shift+Enter (or an input method composing) keeps typing.
    fields.question.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
  }

  // 👍/👎: recorded in place; the form still works without this script.
  document.addEventListener("submit", async (event) => {
    const feedback = event.target;
    if (!(feedback instanceof HTMLFormElement) || !feedback.matches("form[data-feedback]")) return;
    event.preventDefault();
    const button = event.submitter;
    if (!button) return;
    const fields = feedback.elements;
    const status = feedback.querySelector("[role=status]");
    try {
      await engram.api("/chat/feedback", {
        method: "POST",
        body: {
          rating: button.value,
          conversation_id: fields.conversation_id.value,
          message_id: Number(fields.message_id.value),
          collection: fields.collection.value,
        },
      });
      feedback.querySelectorAll("button").forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
      status.textContent = strings.thanks;
    } catch (error) {
      status.textContent = error.message;
    }
  });
})();
