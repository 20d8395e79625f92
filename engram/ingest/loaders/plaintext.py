"""Plain text: one block per blank-line separated paragraph."""

from __future__ import annotations

from engram.ingest.loaders.base import (
    LoaderOptions,
    decode_text,
    fallback_title,
    no_text,
    paragraph_spans,
)
from engram.types import Block, LoadedDocument


def load(
    data: bytes, *, key: str, name: str, source: str, options: LoaderOptions
) -> list[LoadedDocument]:
    """Load a ``.txt`` file; the text is kept verbatim apart from newline normalisation."""
    text = decode_text(data, source, options.encoding)
    blocks = [Block(start, end) for start, end in paragraph_spans(text)]
    if not blocks:
        raise no_text(source)
    return [
        LoadedDocument(key=key, text=text, title=fallback_title(name), blocks=blocks, source=source)
    ]
