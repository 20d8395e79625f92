"""Shared pieces of the loaders: options, byte decoding, offset-keeping text assembly."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath

from engram.errors import LoaderError
from engram.types import Block, LoadedDocument

# Above this share of control / replacement characters a "text" file is really binary.
_MAX_JUNK_RATIO = 0.05
_BLANK_LINE = re.compile(r"\n[ \t\f\v]*\n")
_NEWLINES = re.compile(r"\r\n?")


@dataclass(frozen=True, slots=True)
class LoaderOptions:
    """How records (json, jsonl, csv) map to documents, and how text files are decoded.

    ``id_field=None`` tries ``"_id"`` then ``"id"``. ``text_fields`` are joined by blank lines;
    for csv, when none of them is a column, every column except id and title is used.
    ``metadata_fields=None`` keeps every other field, and a nested ``"metadata"`` object is
    merged in, so a BEIR ``corpus.jsonl`` loads as-is. ``encoding`` is tried first, then
    utf-8, utf-8-sig, cp1252 and latin-1.
    """

    id_field: str | None = None
    title_field: str = "title"
    text_fields: tuple[str, ...] | None = None
    metadata_fields: tuple[str, ...] | None = None
    encoding: str = "utf-8"


DEFAULT_OPTIONS = LoaderOptions()


def fail(source: str, reason: str, hint: str | None = None) -> LoaderError:
    """A :class:`LoaderError` whose message names the file and the reason."""
    return LoaderError(f"{source}: {reason}", hint=hint, source=source)


def no_text(source: str, hint: str | None = None) -> LoaderError:
    return fail(source, "no text could be extracted", hint or "the document looks empty")


def check_not_binary(data: bytes, source: str) -> None:
    """Refuse data with NUL bytes (binary) unless a UTF-16/32 byte-order mark explains them."""
    if b"\x00" in data[:65536] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise fail(source, "looks like a binary file, not text", "check the file extension")


def decode_text(data: bytes, source: str, encoding: str = "utf-8") -> str:
    """Decode bytes to text with newlines normalised to ``\\n``.

    Tries ``encoding``, then utf-8, then cp1252, ending with latin-1 (which never fails); a
    byte-order mark wins over all of them. Binary data is refused with a :class:`LoaderError`.
    """
    check_not_binary(data, source)
    if data.startswith(b"\xef\xbb\xbf"):
        candidates = ["utf-8-sig"]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        candidates = ["utf-16"]
    else:
        candidates = list(dict.fromkeys([encoding, "utf-8", "cp1252"]))
    text: str | None = None
    for name in candidates:
        try:
            text = data.decode(name)
            break
        except (UnicodeDecodeError, LookupError):
            continue
    if text is None:
        text = data.decode("latin-1")
    text = _NEWLINES.sub("\n", text.removeprefix("\ufeff"))
    if _junk_ratio(text) > _MAX_JUNK_RATIO:
        raise fail(source, "looks like a binary file, not text", "check the file extension")
    return text


def _junk_ratio(text: str) -> float:
    sample = text[:65536]
    if not sample:
        return 0.0
    junk = sum(
        1
        for ch in sample
        if ch == "\ufffd" or (ch not in "\t\n\f\v" and unicodedata.category(ch) == "Cc")
    )
    return junk / len(sample)


def strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink ``[start, end)`` so it neither starts nor ends with whitespace."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def paragraph_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Spans of the blank-line separated paragraphs of ``text[start:end]``, whitespace-trimmed."""
    end = len(text) if end is None else end
    spans = []
    pos = start
    for match in _BLANK_LINE.finditer(text, start, end):
        spans.append(strip_span(text, pos, match.start()))
        pos = match.end()
    spans.append(strip_span(text, pos, end))
    return [(a, b) for a, b in spans if b > a]


def fallback_title(name: str) -> str:
    """The file stem, when ``name`` looks like a file name (``"stdin"`` gives no title)."""
    path = PurePosixPath(name)
    return path.stem if path.suffix else ""


class HeadingStack:
    """The chain of enclosing headings; a heading closes every open heading at its level or deeper."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, str]] = []

    def push(self, level: int, title: str) -> tuple[str, ...]:
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, title))
        return self.path

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(title for _, title in self._stack)


class TextBuilder:
    """Assembles a document's text from extracted pieces while recording each piece's block."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._length = 0
        self.blocks: list[Block] = []

    def add(
        self,
        text: str,
        *,
        heading_path: tuple[str, ...] = (),
        page: int | None = None,
        is_heading: bool = False,
    ) -> None:
        text = text.strip()
        if not text:
            return
        if self._length:
            self._parts.append("\n\n")
            self._length += 2
        start = self._length
        self._parts.append(text)
        self._length += len(text)
        self.blocks.append(Block(start, self._length, heading_path, page, is_heading))

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def document(self, *, key: str, source: str, title: str = "") -> LoadedDocument:
        """The assembled document; raises "no text" when nothing was added."""
        if not self.blocks:
            raise no_text(source)
        return LoadedDocument(
            key=key, text=self.text, title=title, blocks=self.blocks, source=source
        )
