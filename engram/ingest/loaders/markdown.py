"""Markdown: ATX and setext headings, paragraphs, list items and fenced code as blocks.

A small line scanner rather than a full CommonMark parser: offsets must point into the original
text, and retrieval only needs the block structure, not the rendering.
"""

from __future__ import annotations

import re

from engram.ingest.loaders.base import (
    HeadingStack,
    LoaderOptions,
    decode_text,
    fallback_title,
    no_text,
    strip_span,
)
from engram.types import Block, LoadedDocument

_ATX = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r" {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_THEMATIC = re.compile(r" {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_LIST_ITEM = re.compile(r"[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+\S")
_FRONT_MATTER_LINE = re.compile(r"([A-Za-z_][\w-]*)[ \t]*:[ \t]*(.*)$")


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = text.split("\n")
        self.starts: list[int] = []
        pos = 0
        for line in self.lines:
            self.starts.append(pos)
            pos += len(line) + 1
        self.blocks: list[Block] = []
        self.headings = HeadingStack()
        self.title = ""
        self.metadata: dict[str, str] = {}
        self._para: list[int] = []

    def add(self, first: int, last: int, is_heading: bool = False) -> None:
        start, end = strip_span(
            self.text, self.starts[first], self.starts[last] + len(self.lines[last])
        )
        if end > start:
            self.blocks.append(Block(start, end, self.headings.path, None, is_heading))

    def flush(self) -> None:
        if self._para:
            self.add(self._para[0], self._para[-1])
            self._para = []

    def heading(self, level: int, first: int, last: int, title: str) -> None:
        self.headings.push(level, title)
        self.add(first, last, is_heading=True)
        if level == 1 and not self.title:
            self.title = title

    def front_matter(self) -> int:
        """Skip YAML front matter, keeping its simple ``key: value`` lines as metadata."""
        if not self.lines or self.lines[0].rstrip() != "---":
            return 0
        for i in range(1, len(self.lines)):
            if self.lines[i].rstrip() in ("---", "..."):
                for line in self.lines[1:i]:
                    match = _FRONT_MATTER_LINE.match(line)
                    if match and match.group(2).strip():
                        self.metadata[match.group(1)] = match.group(2).strip().strip("'\"")
                return i + 1
        return 0

    def scan(self) -> None:
        i = self.front_matter()
        lines = self.lines
        while i < len(lines):
            line = lines[i]
            if fence := _FENCE.match(line):
                self.flush()
                marker = fence.group(1)
                closing = re.compile(rf" {{0,3}}{marker[0]}{{{len(marker)},}}[ \t]*$")
                j = next((k for k in range(i + 1, len(lines)) if closing.match(lines[k])), None)
                last = len(lines) - 1 if j is None else j
                self.add(i, last)  # kept whole: splitting code mid-fence loses its meaning
                i = last + 1
                continue
            if atx := _ATX.match(line):
                self.flush()
                title = (atx.group(2) or "").strip()
                if title:
                    # The block is the heading text alone, without the '#' markers.
                    start = self.starts[i] + atx.start(2)
                    self.headings.push(len(atx.group(1)), title)
                    self.blocks.append(
                        Block(start, start + len(title), self.headings.path, None, True)
                    )
                    if len(atx.group(1)) == 1 and not self.title:
                        self.title = title
            elif (
                self._para
                and not _LIST_ITEM.match(lines[self._para[0]])
                and (setext := _SETEXT.match(line))
            ):
                first, last = self._para[0], self._para[-1]
                self._para = []
                title = " ".join(lines[k].strip() for k in range(first, last + 1))
                self.heading(1 if setext.group(1)[0] == "=" else 2, first, last, title)
            elif not line.strip() or _THEMATIC.match(line):
                self.flush()
            else:
                if _LIST_ITEM.match(line):
                    self.flush()  # one block per list item: items rarely end with a period
                self._para.append(i)
            i += 1
        self.flush()


def load(
    data: bytes, *, key: str, name: str, source: str, options: LoaderOptions
) -> list[LoadedDocument]:
    """Load a markdown file; title = front matter ``title``, else the first H1, else the stem."""
    text = decode_text(data, source, options.encoding)
    scanner = _Scanner(text)
    scanner.scan()
    if not scanner.blocks:
        raise no_text(source)
    metadata: dict[str, object] = dict(scanner.metadata)
    title = str(metadata.pop("title", "")) or scanner.title or fallback_title(name)
    return [
        LoadedDocument(
            key=key, text=text, title=title, metadata=metadata, blocks=scanner.blocks, source=source
        )
    ]
