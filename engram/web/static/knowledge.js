// engram web app: uploads on the knowledge pages. Files and folders (picked, or dropped:
// folders are walked with webkitGetAsEntry) are sent one at a time per slot to the API,
// POST /v1/collections/{name}/files?async=true, with the session's CSRF header: the API
// checks the file and answers 202 with a background job (ingest.file) that a worker parses
// and indexes. Each file shows its upload progress, then its job, polled at /v1/jobs/{id}:
// "Queued", "Indexing n/m" (documents of the file), then "Done" with what happened, or
// "Failed" with the reason. Retry queues a failed job again (POST /v1/jobs/{id}:retry: the
// job kept the file), or sends the file again when the upload itself failed. Each row with
// a job links to the Indexing page (/jobs). When the queue is empty, the page's list is
// reloaded in place.
"use strict";
(function () {
  const SLOTS = 2; // files uploaded at once
  const POLL_MS = 500;

  function format(text, values) {
    return text.replace(/\{(\w+)\}/g, (m, name) => (name in values ? values[name] : m));
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  // The API's error message from a failed response (the one error shape), or the status.
  function errorOf(xhr) {
    try {
      const error = JSON.parse(xhr.responseText).error;
      return error.message + (error.hint ? " — " + error.hint : "");
    } catch (_) {
      return xhr.status ? xhr.status + " " + xhr.statusText : "network error";
    }
  }

  function setup(root) {
    const messages = JSON.parse(root.dataset.messages);
    const extensions = new Set((root.dataset.extensions || "").split(" ").filter(Boolean));
    const list = root.querySelector("[data-upload-list]");
    const summary = root.querySelector("[data-upload-summary]");
    const nameBox = root.querySelector("[data-upload-collection]");
    const zone = root.querySelector("[data-dropzone]");
    const queue = [];
    const items = [];
    let active = 0;
    let skipped = 0;

    const collection = () => (root.dataset.collection || (nameBox ? nameBox.value.trim() : ""));

    function supported(name) {
      const dot = name.lastIndexOf(".");
      return dot > 0 && extensions.has(name.slice(dot).toLowerCase());
    }

    function render(item) {
      const li = document.createElement("li");
      li.className = "upload-item";
      const head = document.createElement("div");
      head.className = "upload-head";
      const name = document.createElement("span");
      name.className = "mono";
      name.textContent = item.path;
      const state = document.createElement("span");
      state.className = "badge";
      const detail = document.createElement("span");
      detail.className = "muted small";
      head.append(name, " ", state, " ", detail);
      const bar = document.createElement("progress");
      bar.max = 100;
      bar.setAttribute("aria-label", format(messages.progress, { name: item.path }));
      const error = document.createElement("p");
      error.className = "notice error";
      error.hidden = true;
      const retry = document.createElement("button");
      retry.type = "button";
      retry.textContent = messages.retry;
      retry.hidden = true;
      retry.setAttribute("aria-label", messages.retry + " " + item.path);
      retry.addEventListener("click", () => {
        retry.hidden = true;
        error.hidden = true;
        enqueue(item);
      });
      li.append(head, bar, error, retry);
      Object.assign(item, { li, state, detail, bar, error, retry });
      list.append(li);
    }

    // The row's link to the Indexing page, once the file has a job.
    function linkJob(item) {
      if (item.jobLink) return;
      item.jobLink = document.createElement("a");
      item.jobLink.href = "/jobs";
      item.jobLink.className = "small job-link";
      item.jobLink.textContent = messages.job_link;
      const who = document.createElement("span");
      who.className = "sr-only";
      who.textContent = " " + format(messages.job_of, { name: item.path });
      item.jobLink.append(who);
      item.li.querySelector(".upload-head").append(" ", item.jobLink);
    }

    function show(item, state, percent, detail) {
      item.status = state;
      item.li.dataset.state = state;
      item.state.textContent = messages[state];
      item.state.className = "badge" + (state === "done" ? " ok" : state === "failed" ? " bad" : "");
      if (percent === null) item.bar.removeAttribute("value"); // indeterminate
      else item.bar.value = percent;
      const percentText = percent !== null && state === "uploading" ? percent + "%" : "";
      item.detail.textContent = detail || percentText;
    }

    function fail(item, message) {
      show(item, "failed", 0, "");
      item.error.textContent = message;
      item.error.hidden = false;
      item.retry.hidden = false;
    }

    function send(item, name) {
      return new Promise((resolve, reject) => {
        const form = new FormData();
        form.append("file", item.file, item.file.name);
        form.append("key", item.path);
        const xhr = new XMLHttpRequest();
        xhr.open("POST", "/v1/collections/" + encodeURIComponent(name) + "/files?async=true");
        xhr.setRequestHeader("X-CSRF-Token", window.engram.csrf());
        xhr.responseType = "text";
        xhr.upload.addEventListener("progress", (event) => {
          if (event.lengthComputable) show(item, "uploading", Math.round((99 * event.loaded) / event.total));
        });
        xhr.upload.addEventListener("load", () => show(item, "queued", null));
        xhr.addEventListener("load", () => {
          if (xhr.status >= 200 && xhr.status < 300) {
            try {
              resolve(JSON.parse(xhr.responseText));
            } catch (_) {
              reject(new Error(xhr.status + " " + xhr.statusText));
            }
          } else reject(new Error(errorOf(xhr)));
        });
        xhr.addEventListener("error", () => reject(new Error(errorOf(xhr))));
        xhr.send(form);
      });
    }

    // The file's job: shown as it goes (queued, then indexing n of m documents) until it
    // ends; its report, or an Error with the job's reason. A failed job stays the item's
    // (Retry queues it again); a finished one is let go (Retry sends the file again).
    async function follow(item, job) {
      item.job = job.job_id;
      linkJob(item);
      for (;;) {
        const p = job.progress || {};
        if (job.status === "queued") show(item, "queued", null);
        else if (job.status === "running" && p.documents_total) {
          const counts = { done: p.documents_done || 0, total: p.documents_total };
          const percent = Math.round((100 * counts.done) / counts.total);
          show(item, "indexing", percent, format(messages.indexing_of, counts));
        } else if (job.status === "running") show(item, "indexing", null, messages.parsing);
        else break;
        await sleep(POLL_MS);
        job = await window.engram.api("/v1/jobs/" + encodeURIComponent(job.job_id));
      }
      if (job.status !== "succeeded") throw new Error(job.error || job.status);
      item.job = null;
      return job.result;
    }

    // Retry of a file whose job did not end well: queue the job again if it failed (it
    // kept the file), or go on following it (a poll that failed); the job, or an Error.
    async function resume(item) {
      const path = "/v1/jobs/" + encodeURIComponent(item.job);
      try {
        const job = await window.engram.api(path);
        if (job.status !== "failed") return job;
        return await window.engram.api(path + ":retry", { method: "POST" });
      } catch (error) {
        item.job = null; // the next Retry sends the file again
        throw error;
      }
    }

    async function run(item) {
      const name = collection();
      if (!name) throw new Error(messages.no_collection);
      let report;
      if (item.job) {
        show(item, "queued", null);
        report = await resume(item);
      } else {
        show(item, "uploading", 0);
        report = await send(item, name);
      }
      if (report.job_id) report = await follow(item, report);
      if (report.failed) {
        throw new Error((report.errors || []).map((e) => e.reason).join("; ") || messages.failed);
      }
      const what = report.added ? messages.added : report.updated ? messages.updated : messages.unchanged;
      show(item, "done", 100, what);
      if (!root.dataset.collection && !item.link) {
        item.link = document.createElement("a");
        item.link.href = "/knowledge/" + encodeURIComponent(name);
        item.link.className = "small";
        item.link.textContent = format(messages.view, { name });
        item.li.append(item.link);
      }
    }

    function pump() {
      while (active < SLOTS && queue.length) {
        const item = queue.shift();
        active += 1;
        run(item)
          .catch((error) => fail(item, error.message))
          .finally(() => {
            active -= 1;
            pump();
            if (!active && !queue.length) finished();
          });
      }
      tally();
    }

    function enqueue(item) {
      show(item, "waiting", 0);
      queue.push(item);
      pump();
    }

    function add(file, path) {
      const item = { file, path: path || file.name };
      items.push(item);
      render(item);
      enqueue(item);
    }

    function tally() {
      const done = items.filter((i) => i.status === "done").length;
      const failed = items.filter((i) => i.status === "failed").length;
      let text = items.length ? format(messages.summary, { done, total: items.length, failed }) : "";
      if (skipped) text += " " + format(messages.skipped, { n: skipped });
      summary.textContent = text;
    }

    // Reload the page's list (collections or documents) in place once the queue is empty.
    async function finished() {
      tally();
      const selector = root.dataset.refresh;
      const target = selector && document.querySelector(selector);
      if (!target) return;
      try {
        const response = await fetch(window.location.href, { credentials: "same-origin" });
        if (!response.ok) return;
        const html = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = html.querySelector(selector);
        if (fresh) target.replaceWith(fresh);
      } catch (_) { /* the list stays as it was */ }
    }

    // Files of a picker: a folder's carry their path inside it (webkitRelativePath).
    function fromInput(input) {
      const folder = input.hasAttribute("webkitdirectory");
      for (const file of Array.from(input.files)) {
        const path = file.webkitRelativePath || file.name;
        if (folder && (!supported(file.name) || file.name.startsWith("."))) skipped += 1;
        else add(file, path);
      }
      input.value = "";
      tally();
    }

    async function walk(entry, prefix) {
      if (entry.isFile) {
        // Inside folders, hidden files and types no loader reads are skipped (counted); a
        // file dropped alone is sent anyway, so its error is shown.
        if (prefix && (entry.name.startsWith(".") || !supported(entry.name))) {
          skipped += 1;
          return;
        }
        const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
        add(file, prefix + entry.name);
      } else if (entry.isDirectory) {
        const reader = entry.createReader();
        for (;;) {
          const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
          if (!batch.length) break;
          for (const child of batch) await walk(child, prefix + entry.name + "/");
        }
      }
    }

    for (const input of root.querySelectorAll("[data-upload-input]")) {
      input.addEventListener("change", () => fromInput(input));
    }
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", async (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      const transfer = event.dataTransfer;
      // The entries must be taken now: the DataTransfer is emptied once the handler awaits.
      const entries = Array.from(transfer.items || [])
        .map((i) => (i.webkitGetAsEntry ? i.webkitGetAsEntry() : null))
        .filter(Boolean);
      if (entries.length) {
        for (const entry of entries) await walk(entry, "");
      } else {
        for (const file of Array.from(transfer.files)) add(file, file.name);
      }
      tally();
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const root of document.querySelectorAll("[data-upload]")) setup(root);
  });
})();
