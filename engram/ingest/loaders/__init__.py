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
from engram.unicode import path_text

__all__ = ["LoaderOptions", "load_bytes", "load_path", "supported_extensions"]

# A parser: (data, key=, name=, source=, options=) -> documents, and a Failure in place of
# each record of a record file (JSONL...) that could not be read.
Parser = Callable[..., list[LoadedDocument | Failure]]

# extension -> (module under engram.ingest.loaders, function name)
_REGISTRY: dict[str, tuple[str, str]] = {
    ".txt": ("plaintext", "load"),
    ".text": ("plaintext", "load"),
    ".rst": ("plaintext", "load"),
    ".xml": ("xml", "load"),
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
    """The file extensions (with the dot, lower case) that have a loader, ``.gz`` included
    (a compressed file of one of the others, or of text)."""
    return set(_REGISTRY) | {".gz"}


def names_a_format(ext: str) -> bool:
    """Whether a file extension names a format (``.png``), unlike none or a version or date
    (``notes.2024``): files whose extension names no format loaded here are left out."""
    return ext[1:].isalpha()


MAX_DECOMPRESSED = 512 * 1024 * 1024  # a .gz expanding past this is refused (a zip bomb)


def looks_like_text(head: bytes) -> bool:
    """Whether the first bytes of a file without a known extension are text: no NUL byte
    (or a UTF-16 byte-order mark) and valid UTF-8 up to a cut multi-byte character."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3  # only the cut at the end of the sample
    return True


def _gunzip(data: bytes, source: str) -> bytes:
    import gzip
    import io
    import zlib

    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as fh:
            out = fh.read(MAX_DECOMPRESSED + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise fail(source, f"not a readable gzip file ({exc})") from exc
    if len(out) > MAX_DECOMPRESSED:
        raise fail(source, f"expands past {MAX_DECOMPRESSED // 2**20} MiB", "decompress it first")
    return out


def _resolve(name: str, data: bytes, source: str) -> tuple[str, bytes, str]:
    """(extension, content, name without .gz) of a file: a ``.gz`` is decompressed and takes
    the extension inside it (``notes.md.gz`` → ``.md``); a file without a known extension
    whose content is text loads as plain text."""
    path = PurePosixPath(name)
    ext = path.suffix.lower()
    if ext == ".gz":
        data = _gunzip(data, source)
        name = path.stem
        ext = PurePosixPath(name).suffix.lower()
    # No extension, or one that is not a format name (notes.2024): text if it looks like it.
    if ext not in _REGISTRY and not names_a_format(ext) and looks_like_text(data[:8192]):
        ext = ".txt"
    return ext, data, name


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
    ext = path.suffix.lower()
    if ext not in supported_extensions() and names_a_format(ext):
        _parser(ext, str(path))  # a format with no loader: fail before reading the file
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise fail(str(path), f"cannot read file ({exc.strerror or exc})") from exc
    return load_file_bytes(path, key=key, data=data, options=options)


def load_file_bytes(
    path: Path, *, key: str, data: bytes, options: LoaderOptions | None = None
) -> list[LoadedDocument | Failure]:
    """:func:`load_path` of the bytes ``data`` already read from ``path``."""
    source = path_text(path)
    ext, data, name = _resolve(path_text(path.name), data, source)
    parser = _parser(ext, source)
    return parser(data, key=key, name=name, source=source, options=options or DEFAULT_OPTIONS)


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
    if ext == ".gz":  # the format inside comes from the name (notes.md.gz), else the content
        ext, data, _ = _resolve(PurePosixPath(key).name.removesuffix(".gz") + ".gz", data, source)
    parser = _parser(ext, source)
    name = key if PurePosixPath(key).suffix else ""
    return parser(data, key=key, name=name, source=source, options=options or DEFAULT_OPTIONS)
