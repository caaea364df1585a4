"""A frozen pretrained sentence encoder (an ONNX transformer) in front of a small tuned head.

`pooled_encoder` turns the user's encoder graph (inputs `input_ids`, `attention_mask` and maybe
`token_type_ids`; output the hidden states [batch, seq, dim]) into one whose output is the text's
embedding: the mean of the hidden states over the real word pieces, L2-normalised, as the
sentence-transformers model card pools them (`token_type_ids` are zeros made in the graph: one
text per row). The tuning driver runs it once over every training and validation text
(`embed`); the trials train only a head on those vectors (family `sentence`); export joins the
same graph and each converted head into one member with `onnx.compose.merge_models`
(`with_head`), so the bundle's member reads the word pieces the Preprocessor makes and its
parity is checked against the Keras head on the embeddings of the same rows.

ONNX Runtime only, no PyTorch and no TensorFlow. Bad graphs raise ValueError (the callers name
the file); this package imports nothing of voxpop.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx.compose
from onnx import TensorProto, helper

EMBEDDING = "sentence_embedding"  # the head's input (voxpop.data.sentence.EMBEDDING_INPUT)
INPUTS = ("input_ids", "attention_mask")  # what the pooled graph reads
TOKEN_TYPES = "token_type_ids"  # an encoder input the pooled graph fills with zeros
HIDDEN = "last_hidden_state"  # the output pooled when the graph has it; else its first output
PREFIX = "pooling/"  # names of the nodes pooled_encoder adds
HEAD_PREFIX = "head/"  # names of the head's nodes inside a member
EMBED_BATCH = 32  # texts per ONNX Runtime call while embedding (sorted by length: little padding)
TOKENIZE_ROWS = 4096  # texts tokenized at once while embedding (their word pieces held in memory)


def pooled_encoder(model: onnx.ModelProto) -> onnx.ModelProto:
    """The encoder with mean pooling and L2 normalisation: inputs `input_ids`, `attention_mask`
    (int64 [batch, seq]), output `sentence_embedding` (float32 [batch, dim])."""
    graph = model.graph
    inputs = {value.name: value for value in graph.input}
    initializers = {init.name for init in graph.initializer}
    real_inputs = [name for name in inputs if name not in initializers]
    unknown = sorted(set(real_inputs) - {*INPUTS, TOKEN_TYPES})
    missing = [name for name in INPUTS if name not in inputs]
    if missing or unknown:
        raise ValueError(
            f"the encoder's inputs are {', '.join(real_inputs) or 'none'}; a sentence "
            f"encoder reads {', '.join(INPUTS)} (and maybe {TOKEN_TYPES}), nothing else"
        )
    for name in INPUTS:
        if inputs[name].type.tensor_type.elem_type != TensorProto.INT64:
            raise ValueError(f"the encoder's input {name} is not int64")
    hidden = _hidden_output(graph)
    pooled = onnx.ModelProto()
    pooled.CopyFrom(model)
    graph = pooled.graph
    if TOKEN_TYPES in inputs:  # one text per row: every word piece is of the first segment
        graph.input.remove(next(v for v in graph.input if v.name == TOKEN_TYPES))
        graph.node.insert(
            0,
            helper.make_node(
                "ConstantOfShape",
                [PREFIX + "shape"],
                [TOKEN_TYPES],
                value=helper.make_tensor(PREFIX + "zero", TensorProto.INT64, [1], [0]),
            ),
        )
        graph.node.insert(0, helper.make_node("Shape", ["input_ids"], [PREFIX + "shape"]))
    names = {
        key: PREFIX + key
        for key in (
            "mask",
            "mask3",
            "masked",
            "summed",
            "count",
            "clipped",
            "mean",
            "squares",
            "squared_norm",
            "norm",
            "norm_clipped",
        )
    }
    graph.initializer.extend(
        [
            helper.make_tensor(PREFIX + "axis1", TensorProto.INT64, [1], [1]),
            helper.make_tensor(PREFIX + "axis2", TensorProto.INT64, [1], [2]),
            helper.make_tensor(PREFIX + "tiny", TensorProto.FLOAT, [], [1e-9]),
            helper.make_tensor(PREFIX + "eps", TensorProto.FLOAT, [], [1e-12]),
        ]
    )
    n = names
    graph.node.extend(
        [
            helper.make_node("Cast", ["attention_mask"], [n["mask"]], to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", [n["mask"], PREFIX + "axis2"], [n["mask3"]]),
            helper.make_node("Mul", [hidden, n["mask3"]], [n["masked"]]),
            helper.make_node(
                "ReduceSum", [n["masked"], PREFIX + "axis1"], [n["summed"]], keepdims=0
            ),
            helper.make_node("ReduceSum", [n["mask"], PREFIX + "axis1"], [n["count"]], keepdims=1),
            helper.make_node("Max", [n["count"], PREFIX + "tiny"], [n["clipped"]]),
            helper.make_node("Div", [n["summed"], n["clipped"]], [n["mean"]]),
            # ReduceSum takes its axes as an input from opset 13, ReduceL2 only from 18: Sqrt of sums
            helper.make_node("Mul", [n["mean"], n["mean"]], [n["squares"]]),
            helper.make_node(
                "ReduceSum", [n["squares"], PREFIX + "axis1"], [n["squared_norm"]], keepdims=1
            ),
            helper.make_node("Sqrt", [n["squared_norm"]], [n["norm"]]),
            helper.make_node("Max", [n["norm"], PREFIX + "eps"], [n["norm_clipped"]]),
            helper.make_node("Div", [n["mean"], n["norm_clipped"]], [EMBEDDING]),
        ]
    )
    dim = _hidden_dim(model.graph, hidden)
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(EMBEDDING, TensorProto.FLOAT, ["batch", dim]))
    onnx.checker.check_model(pooled)
    return pooled


def _hidden_output(graph) -> str:
    outputs = [
        value
        for value in graph.output
        if len(value.type.tensor_type.shape.dim) == 3
        and value.type.tensor_type.elem_type == TensorProto.FLOAT
    ]
    if not outputs:
        names = ", ".join(value.name for value in graph.output) or "none"
        raise ValueError(
            f"the encoder has no float output of shape [batch, seq, dim] (its "
            f"outputs: {names}); a sentence encoder returns its hidden states"
        )
    named = [value for value in outputs if value.name == HIDDEN]
    return (named or outputs)[0].name


def _hidden_dim(graph, hidden: str) -> int | str:
    dim = next(v for v in graph.output if v.name == hidden).type.tensor_type.shape.dim[2]
    return dim.dim_value if dim.HasField("dim_value") else "dim"


def embedding_dim(pooled: onnx.ModelProto) -> int | None:
    """The embedding width the pooled graph declares (None when dynamic)."""
    dim = pooled.graph.output[0].type.tensor_type.shape.dim[1]
    return dim.dim_value if dim.HasField("dim_value") else None


class Embedder:
    """Runs a pooled encoder in ONNX Runtime over many texts, a batch of similar lengths at a
    time (the padding a batch carries costs the transformer the most)."""

    def __init__(self, pooled: onnx.ModelProto | bytes, *, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        data = pooled if isinstance(pooled, bytes) else pooled.SerializeToString()
        self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])

    def embed_inputs(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """float32 [n, dim] for word pieces already made (one call)."""
        return self.session.run([EMBEDDING], {name: inputs[name] for name in INPUTS})[0]

    def embed(self, texts: list[str], tokenize, *, batch_size: int = EMBED_BATCH) -> np.ndarray:
        """float32 [n, dim] in the order of `texts`; `tokenize(texts)` makes the word pieces
        (the Preprocessor's `encode(..., inputs=INPUTS)`, padded at the end to the call's
        longest text). Texts are tokenized in blocks of about one length (by characters), then
        run `batch_size` at a time in order of word-piece count, each run cut to its longest
        text: the transformer's time follows the width it is given (measured on 2,000 demo
        tweets, 2 cores: 102 rows/s, against 58 for runs of 64 by characters, uncut).
        As `voxpop.ensemble.sessions.run_by_length`, which this package may not import."""
        embeddings = None
        by_chars = np.argsort([len(text) for text in texts], kind="stable")
        for start in range(0, len(texts), TOKENIZE_ROWS):
            block = by_chars[start : start + TOKENIZE_ROWS]
            pieces = tokenize([texts[i] for i in block])
            counts = np.count_nonzero(pieces["attention_mask"], axis=1)
            by_pieces = np.argsort(counts, kind="stable")
            for first in range(0, len(block), batch_size):
                rows = by_pieces[first : first + batch_size]
                width = max(1, int(counts[rows].max()))
                part = self.embed_inputs({name: pieces[name][rows, :width] for name in INPUTS})
                if embeddings is None:
                    embeddings = np.empty((len(texts), part.shape[1]), np.float32)
                embeddings[block[rows]] = part
        return embeddings if embeddings is not None else np.empty((0, 0), np.float32)


def with_head(pooled: onnx.ModelProto, head: onnx.ModelProto) -> onnx.ModelProto:
    """One member: the pooled encoder feeding the head's `sentence_embedding` (inputs
    `input_ids`, `attention_mask`; the head's output `probs`)."""
    opset = default_opset(pooled)
    if default_opset(head) != opset:
        head = onnx.version_converter.convert_version(head, opset)
    head = onnx.compose.add_prefix(head, HEAD_PREFIX, rename_inputs=False, rename_outputs=False)
    ir_version = max(pooled.ir_version, head.ir_version)
    pooled.ir_version = head.ir_version = ir_version
    member = onnx.compose.merge_models(
        pooled,
        head,
        io_map=[(EMBEDDING, EMBEDDING)],
        outputs=[value.name for value in head.graph.output],
    )
    # merge_models lists the default domain once per model; ONNX Runtime's quantizer (export
    # --quantize int8) refuses a model that names it twice
    versions: dict[str, int] = {}
    for opset in member.opset_import:
        domain = "" if opset.domain == "ai.onnx" else opset.domain
        versions[domain] = max(versions.get(domain, 0), opset.version)
    del member.opset_import[:]
    member.opset_import.extend(helper.make_opsetid(d, v) for d, v in versions.items())
    onnx.checker.check_model(member)
    return member


def default_opset(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
