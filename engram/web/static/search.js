// The search page and the source viewer: the cited span scrolled into view, and errors of a
// search (a malformed filter, an unknown collection) shown where the results go.
"use strict";
(function () {
  function showCited() {
    const cited = document.getElementById("cited");
    if (!cited) return;
    // Scroll the text box to the passage (a third from its top), and the page only as far
    // as needed to show the box, so the title and metadata stay in sight.
    const box = cited.closest(".document-text");
    if (box) {
      box.scrollTop = Math.max(0, cited.offsetTop - box.clientHeight / 3);
      if (box.getBoundingClientRect().top > window.innerHeight / 2) box.scrollIntoView({ block: "start" });
    } else {
      cited.scrollIntoView({ block: "center" });
    }
    cited.focus({ preventScroll: true });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", showCited);
  else showCited();

  // htmx swaps only 2xx responses; a search's error (a 4xx or 5xx page) is meant for the
  // results region, where the person looks.
  document.addEventListener("htmx:beforeSwap", (event) => {
    const source = event.detail.requestConfig && event.detail.requestConfig.elt;
    const status = event.detail.xhr.status;
    if (status >= 400 && source && source.closest && source.closest("[data-swap-errors], #results")) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();
