// The source viewer: the cited span scrolled into view. (A search's errors are swapped into
// the results region by app.js, as every htmx error is.)
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
})();
