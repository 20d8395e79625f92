// The Operations page: copy a new API key to the clipboard (shown once, never stored here).
"use strict";
(function () {
  document.addEventListener("click", async (event) => {
    const button = event.target.closest && event.target.closest("[data-copy]");
    if (!button) return;
    const field = document.getElementById(button.dataset.copy);
    const status = document.getElementById("copy-status");
    try {
      await navigator.clipboard.writeText(field.value);
      if (status) status.textContent = button.dataset.copied;
    } catch (_) {
      // No clipboard (an insecure origin, a refused permission): select it for Ctrl+C.
      field.focus();
      field.select();
      if (status) status.textContent = button.dataset.copyFailed;
    }
  });
})();
