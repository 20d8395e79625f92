"""Turn files into :class:`~engram.types.LoadedDocument` s, one parser module per format.

Parsers are resolved by extension and imported only when first used, so loading a folder of
markdown never imports pypdfium2 or python-docx::

    docs = load_path(Path("guide.md"), key="guide.md")
    docs = load_path(Path("corpus.jsonl"), key="corpus.jsonl")  # one document per line
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from engram.errors import UnsupportedFormat
from engram.ingest.loaders.base import DEFAULT_OPTIONS, LoaderOptions, fail
from engram.types import Failure, LoadedDocument

__all__ = ["LoaderOptions", "load_bytes", "load_path", "supported_extensions"]

# A parser: (data, key=, name=, source=, options=) -> documents, and a Failure in place of
# each record of a record file (JSONL...) that could not be read.
Parser = Callable[..., list[LoadedDocument | Failure]]

# extension -> (module under engram.ingest.loaders, function name)
_REGISTRY: dict[str, tuple[str, str]] = {
    ".txt": ("plaintext", "load"),
    ".text": ("plaintext", "load"),
    ".md": ("markdown", "load"),
    ".markdown": ("markdown", "load"),
    ".html": ("html", "load"),
    ".htm": ("html", "load"),
    ".pdf": ("pdf", "load"),
    ".docx": ("docx", "load"),
    ".json": ("records", "load_json"),
    ".jsonl": ("records", "load_jsonl"),
    ".ndjson": ("records", "load_jsonl"),
    ".csv": ("records", "load_csv"),
}
# Format names accepted by load_bytes besides the extensions themselves.
_ALIASES = {"text": ".txt", "plain": ".txt", "markdown": ".md", "html": ".html"}


def supported_extensions() -> set[str]:
    """The file extensions (with the dot, lower case) that have a loader."""
    return set(_REGISTRY)


def _parser(ext: str, source: str) -> Parser:
    try:
        module_name, func = _REGISTRY[ext]
    except KeyError:
        supported = ", ".join(sorted(_REGISTRY))
        raise UnsupportedFormat(
            f"{source}: unsupported format {ext or '(no extension)'!r}",
            hint=f"supported extensions: {supported}",
            supported=sorted(_REGISTRY),
        ) from None
    module = importlib.import_module(f"{__name__}.{module_name}")
    parser: Parser = getattr(module, func)
    return parser


def load_path(
    path: Path, *, key: str, options: LoaderOptions | None = None
) -> list[LoadedDocument | Failure]:
    """Load one file. Text, markdown, HTML, PDF and DOCX give one document; JSON, JSONL and
    CSV give one per record. Raises :class:`UnsupportedFormat` for an unknown extension and
    :class:`LoaderError` for an unreadable, corrupt or empty file."""
    parser = _parser(path.suffix.lower(), str(path))
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise fail(str(path), f"cannot read file ({exc.strerror or exc})") from exc
    return parser(
        data, key=key, name=path.name, source=str(path), options=options or DEFAULT_OPTIONS
    )


def load_bytes(
    data: bytes,
    *,
    fmt: str,
    key: str,
    options: LoaderOptions | None = None,
    source: str = "",
) -> list[LoadedDocument | Failure]:
    """Load in-memory content (stdin, an upload). ``fmt`` is an extension (``"md"``,
    ``".pdf"``) or a format name (``"markdown"``, ``"text"``); ``source`` defaults to ``key``."""
    ext = fmt.lower().strip()
    ext = _ALIASES.get(ext, ext if ext.startswith(".") else f".{ext}")
    source = source or key
    parser = _parser(ext, source)
    name = key if PurePosixPath(key).suffix else ""
    return parser(data, key=key, name=name, source=source, options=options or DEFAULT_OPTIONS)
