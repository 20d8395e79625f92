"""HTML: headings, paragraphs, list items, preformatted text and table rows as blocks.

Page chrome (scripts, styles, navigation, site header and footer) is dropped before walking
the tree, so boilerplate does not end up in every chunk of a crawled site.
"""

from __future__ import annotations

import warnings

from bs4 import (
    BeautifulSoup,
    MarkupResemblesLocatorWarning,
    NavigableString,
    Tag,
    XMLParsedAsHTMLWarning,
)
from bs4.element import PageElement

from engram.ingest.loaders.base import (
    HeadingStack,
    LoaderOptions,
    TextBuilder,
    check_not_binary,
    fallback_title,
)
from engram.types import LoadedDocument

_NOISE = ("script", "style", "noscript", "template", "nav", "svg", "iframe", "canvas", "head")
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
# Elements that end the running paragraph; inline elements (a, em, span...) do not.
_BLOCK_TAGS = (
    "address article aside blockquote body caption dd details dialog div dl dt fieldset "
    "figcaption figure footer form header hr li main ol p section summary table tbody td tfoot "
    "th thead tr ul"
)
_BLOCKS = frozenset(_BLOCK_TAGS.split())


def _collapse(text: str) -> str:
    return " ".join(text.split())


class _Walker:
    """Iterative document-order walk (deeply nested pages would overflow recursion)."""

    def __init__(self) -> None:
        self.out = TextBuilder()
        self.headings = HeadingStack()
        self.first_h1 = ""
        self._buf: list[str] = []
        self._in_row = 0

    def flush(self) -> None:
        self.out.add(_collapse("".join(self._buf)), heading_path=self.headings.path)
        self._buf.clear()

    def enter(self, tag: Tag) -> bool:
        """Handle an opening tag; returns whether to descend into its children."""
        name = tag.name
        if name == "pre" and not self._in_row:
            self.flush()
            self.out.add(tag.get_text(), heading_path=self.headings.path)
            return False
        if name == "br":
            self._buf.append("\n")
        elif name == "tr":
            if not self._in_row:
                self.flush()
            self._in_row += 1
        elif self._in_row:
            if name in ("td", "th") and _collapse("".join(self._buf)):
                self._buf.append(" | ")  # one block per row keeps "key | value" tables readable
            else:
                self._buf.append(" ")
        elif name in _HEADINGS or name in _BLOCKS:
            self.flush()
        return True

    def leave(self, tag: Tag) -> None:
        name = tag.name
        if name == "tr":
            self._in_row -= 1
            if not self._in_row:
                self.flush()
        elif self._in_row:
            self._buf.append(" ")
        elif name in _HEADINGS:
            title = _collapse("".join(self._buf))
            self._buf.clear()
            if title:
                path = self.headings.push(_HEADINGS[name], title)
                self.out.add(title, heading_path=path, is_heading=True)
                if name == "h1" and not self.first_h1:
                    self.first_h1 = title
        elif name in _BLOCKS:
            self.flush()

    def walk(self, root: Tag) -> None:
        stack: list[tuple[PageElement, bool]] = [(root, False)]
        while stack:
            node, leaving = stack.pop()
            if isinstance(node, Tag):
                if leaving:
                    self.leave(node)
                elif self.enter(node):
                    stack.append((node, True))
                    stack.extend((child, False) for child in reversed(node.contents))
            elif type(node) is NavigableString:  # not comments, doctypes, CDATA
                self._buf.append(str(node))
        self.flush()


def _drop_noise(soup: BeautifulSoup) -> None:
    for tag in soup.find_all(_NOISE):
        tag.decompose()
    for tag in soup.find_all(("header", "footer")):
        # An article's own <header> holds its title; only the page-level ones are chrome.
        if not tag.find_parent(("article", "main")):
            tag.decompose()


def load(
    data: bytes, *, key: str, name: str, source: str, options: LoaderOptions
) -> list[LoadedDocument]:
    """Load an HTML page; title = ``<title>``, else the first ``<h1>``, else the file stem."""
    check_not_binary(data, source)
    # Let bs4 honour <meta charset>; only a non-default option overrides it.
    from_encoding = None if options.encoding.lower() in ("utf-8", "utf8") else options.encoding
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
        soup = BeautifulSoup(data, "lxml", from_encoding=from_encoding)
    title_tag = soup.find("title")
    title = _collapse(title_tag.get_text()) if title_tag else ""
    _drop_noise(soup)
    walker = _Walker()
    walker.walk(soup.body or soup)
    title = title or walker.first_h1 or fallback_title(name)
    return [walker.out.document(key=key, source=source, title=title)]
