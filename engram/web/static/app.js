// engram web app: behaviour shared by every page. No inline scripts anywhere (the CSP forbids
// them); pages opt in through data-* attributes.
"use strict";
(function () {
  const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

  // engram.api(path, options): fetch from this server's /v1 API with the session cookie and
  // the CSRF header; resolves to the parsed JSON, rejects with the API's error message.
  async function api(path, options = {}) {
    const headers = Object.assign({ "X-CSRF-Token": csrf() }, options.headers || {});
    let body = options.body;
    if (body && !(body instanceof FormData) && typeof body !== "string") {
      body = JSON.stringify(body);
      headers["Content-Type"] = "application/json";
    }
    const response = await fetch(path, Object.assign({}, options, { headers, body, credentials: "same-origin" }));
    if (!response.ok) {
      let message = response.status + " " + response.statusText;
      try {
        const error = (await response.json()).error;
        message = error.message + (error.hint ? " — " + error.hint : "");
      } catch (_) { /* not JSON */ }
      throw new Error(message);
    }
    return response.status === 204 ? null : response.json();
  }

  // <form data-confirm="Delete this?">: ask before submitting (also for htmx requests).
  document.addEventListener("submit", (event) => {
    const message = event.target.dataset && event.target.dataset.confirm;
    if (message && !window.confirm(message)) event.preventDefault();
  }, true);

  // "/" focuses the page's main search or question box, as on most search sites.
  document.addEventListener("keydown", (event) => {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target.closest && target.closest("input, textarea, select, [contenteditable]")) return;
    const box = document.querySelector("[data-focus-key]");
    if (box) { event.preventDefault(); box.focus(); box.select && box.select(); }
  });

  // htmx swaps only 2xx responses by default: an error page (4xx/5xx) is shown too, where
  // the server points it (HX-Retarget: the page's #flash) or where the result would go.
  document.addEventListener("htmx:beforeSwap", (event) => {
    if (event.detail.xhr.status >= 400) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  window.engram = { api, csrf };
})();
