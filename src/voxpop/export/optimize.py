"""Exact rewrites of the ONNX graphs export writes: the same probabilities (export proves each
rewritten graph against Keras or the vote, within 1e-5), less work for ONNX Runtime.

- `drop_index_guards`: tf2onnx wraps every embedding lookup's ids in `where(ids < 0, ids + rows,
  ids)` (TensorFlow's gather has no negative indices; ONNX's Gather has them, with that very
  meaning), nine elementwise ops over [batch, width] per lookup. The lookup reads the ids directly.
- `trim_token_padding`: a member whose output does not depend on how much padding a row has
  (its family says so: `voxpop.models.padding_invariant`) slices its `tokens` to the columns
  where some row of the batch has a real token, so a batch of short rows costs what short rows
  cost. The ensemble runs rows sorted by length (voxpop.ensemble.sessions.run_by_length) so that a
  batch holds rows of about one length.
- `merge_gram_lookups`: the fused graph's n-gram members (tfidf, tfidf_fusion, tfidf_nb) each
  gather a few columns per n-gram and sum them with the TF-IDF weights; one gather of their
  tables side by side and one weighted sum do the same reads once (the gathers are most of such
  a bundle's time: random reads, one cache line per n-gram per member).
- `share_common_subgraphs`: what the fused graph's members compute alike (equal weights, equal
  operators on equal inputs) is computed once: two `sentence` members hold the same frozen
  encoder, which costs a hundred times what the other members do.

What is not done, measured (bench/RESULTS.md, graph): the transposes tf2onnx puts around a
convolution are one per convolution input and ONNX Runtime's NCHWc layout (its ORT_ENABLE_ALL
level, which every session uses) replaces them; a convolution rewritten as one matrix product
over im2col rows ran slower than ONNX Runtime's NCHWc convolution.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

TOKENS, GRAMS, GRAM_WEIGHTS = "tokens", "grams", "gram_weights"


class _Graph:
    """Who makes and who reads each tensor of a graph, and its constant values."""

    def __init__(self, graph: onnx.GraphProto):
        self.graph = graph
        self.producer = {out: node for node in graph.node for out in node.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for node in graph.node:
            for name in node.input:
                self.consumers[name].append(node)
        self.initializers = {init.name: init for init in graph.initializer}

    def constant(self, name: str) -> np.ndarray | None:
        """The value of an initializer or a Constant node's output, else None."""
        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    return numpy_helper.to_array(attribute.t)
        return None

    def made_by(self, name: str, op_type: str) -> onnx.NodeProto | None:
        node = self.producer.get(name)
        return node if node is not None and node.op_type == op_type else None

    def only_consumer(self, name: str, op_type: str) -> onnx.NodeProto | None:
        readers = self.consumers.get(name, [])
        return readers[0] if len(readers) == 1 and readers[0].op_type == op_type else None


def _remove_dead_nodes(graph: onnx.GraphProto) -> None:
    """Drop nodes whose outputs nobody reads, then initializers nobody reads."""
    wanted = {output.name for output in graph.output}
    kept = []
    for node in reversed(graph.node):
        if any(out in wanted for out in node.output):
            kept.append(node)
            wanted.update(node.input)
            for attribute in node.attribute:  # names a subgraph reads from the outer graph
                for sub in [attribute.g, *attribute.graphs]:
                    wanted.update(name for n in sub.node for name in n.input)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    used = [init for init in graph.initializer if init.name in wanted]
    del graph.initializer[:]
    graph.initializer.extend(used)


# ----------------------------------------------------------------------------- index guards
def drop_index_guards(model: onnx.ModelProto) -> int:
    """Rewire every Gather of an embedding table whose ids pass through tf2onnx's negative-index
    guard to read the ids directly; returns how many. In place."""
    g = _Graph(model.graph)
    rewired = 0
    for node in model.graph.node:
        if node.op_type != "Gather" or node.input[0] not in g.initializers:
            continue
        rows = g.initializers[node.input[0]].dims[0]
        ids = _guarded_ids(g, node.input[1], rows)
        if ids is not None:
            node.input[1] = ids
            rewired += 1
    if rewired:
        _remove_dead_nodes(model.graph)
    return rewired


def _guarded_ids(g: _Graph, name: str, rows: int) -> str | None:
    """`ids` when tensor `name` is tf2onnx's select(ids < 0, ids + rows, ids), i.e.
    Add(Mul(Cast(Less(ids, 0)), Add(ids, rows)), Mul(ids, Cast(Not(Less(ids, 0))))) (the Less
    may read Cast(ids)); else None."""
    add = g.made_by(name, "Add")
    if add is None or len(add.input) != 2:
        return None
    muls = [g.made_by(i, "Mul") for i in add.input]
    if None in muls:
        return None
    for negative, positive in (muls, muls[::-1]):
        for less_cast, shifted in (negative.input, negative.input[::-1]):
            less = _through(g, less_cast, ["Cast", "Less"])
            plus = g.made_by(shifted, "Add")
            if less is None or plus is None:
                continue
            ids = _less_than_zero_of(g, less)
            if ids is None or not _is_shift(g, plus, ids, rows):
                continue
            others = [i for i in positive.input if i != ids]
            if len(others) == 1 and len(positive.input) == 2:
                kept = _through(g, others[0], ["Cast", "Not", "Less"])
                if kept is not None and kept.output[0] == less.output[0]:
                    return ids
    return None


def _through(g: _Graph, name: str, chain: list[str]) -> onnx.NodeProto | None:
    """The last node of `chain` when `name` is made by chain[0] reading chain[1]'s output, ..."""
    node = None
    for op_type in chain:
        node = g.made_by(name, op_type)
        if node is None:
            return None
        name = node.input[0]
    return node


def _less_than_zero_of(g: _Graph, less: onnx.NodeProto) -> str | None:
    zero = g.constant(less.input[1])
    if zero is None or zero.size != 1 or float(zero.reshape(-1)[0]) != 0.0:
        return None
    cast = g.made_by(less.input[0], "Cast")
    return cast.input[0] if cast is not None else less.input[0]


def _is_shift(g: _Graph, plus: onnx.NodeProto, ids: str, rows: int) -> bool:
    if ids not in plus.input:
        return False
    other = [i for i in plus.input if i != ids]
    value = g.constant(other[0]) if len(other) == 1 else None
    return value is not None and value.size == 1 and int(value.reshape(-1)[0]) == rows


# ----------------------------------------------------------------------------- padding
def trim_token_padding(model: onnx.ModelProto) -> bool:
    """Make the member read `tokens` sliced to the columns between the batch's first and last
    column holding a real (non-zero) token; a batch without any keeps every column. For a member
    whose output does not depend on padding only. Returns whether the graph reads `tokens`.
    In place."""
    graph = model.graph
    if TOKENS not in {i.name for i in graph.input} or _opset(model) < 13:
        return False
    trimmed = f"{TOKENS}/trimmed"
    for node in graph.node:
        node.input[:] = [trimmed if name == TOKENS else name for name in node.input]
    p = f"{TOKENS}/trim/"
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(0, np.int32), f"{p}zero"),
            numpy_helper.from_array(np.array([1], np.int64), f"{p}one"),
            numpy_helper.from_array(np.array([1], np.int64), f"{p}axis"),
        ]
    )
    nodes = [
        helper.make_node("Equal", [TOKENS, f"{p}zero"], [f"{p}is_pad"]),
        helper.make_node("Not", [f"{p}is_pad"], [f"{p}is_real"]),
        helper.make_node("Cast", [f"{p}is_real"], [f"{p}real"], to=TensorProto.INT32),
        # 1 for a column where some row has a real token
        _reduce_max_rows(model, f"{p}real", f"{p}used", f"{p}rows_axis"),
        helper.make_node("ArgMax", [f"{p}used"], [f"{p}start"], axis=0, keepdims=1),
        helper.make_node(
            "ArgMax", [f"{p}used"], [f"{p}last"], axis=0, keepdims=1, select_last_index=1
        ),
        helper.make_node("Add", [f"{p}last", f"{p}one"], [f"{p}end"]),
        helper.make_node("Slice", [TOKENS, f"{p}start", f"{p}end", f"{p}axis"], [trimmed]),
    ]
    for position, node in enumerate(nodes):
        graph.node.insert(position, node)
    return True


def _opset(model: onnx.ModelProto) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def _reduce_max_rows(model: onnx.ModelProto, source: str, target: str, axes: str):
    """ReduceMax over axis 0 without keeping it: `axes` an attribute up to opset 17, from 18 an
    input (the initializer named `axes`, added here)."""
    if _opset(model) >= 18:
        model.graph.initializer.append(numpy_helper.from_array(np.array([0], np.int64), axes))
        return helper.make_node("ReduceMax", [source, axes], [target], keepdims=0)
    return helper.make_node("ReduceMax", [source], [target], axes=[0], keepdims=0)


# ----------------------------------------------------------------------------- n-gram lookups
def merge_gram_lookups(model: onnx.ModelProto) -> int:
    """Replace the weighted n-gram sums of several members (Gather(table_i, grams) * Unsqueeze(
    gram_weights, -1), summed over axis 1) by one gather of the tables side by side, one product
    and one sum, sliced back per member. Returns how many lookups were merged (0 or >= 2).
    In place."""
    g = _Graph(model.graph)
    lookups = [found for node in model.graph.node if (found := _gram_lookup(g, node))]
    if len(lookups) < 2 or len({g.initializers[t].dims[0] for t, *_ in lookups}) != 1:
        return 0
    tables = [numpy_helper.to_array(g.initializers[table]) for table, *_ in lookups]
    if len({t.dtype for t in tables}) != 1:
        return 0
    p = "grams/merged/"
    graph = model.graph
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.concatenate(tables, axis=1), f"{p}table"),
            numpy_helper.from_array(np.array([-1], np.int64), f"{p}last_axis"),
            numpy_helper.from_array(np.array([1], np.int64), f"{p}sum_axis"),
        ]
    )
    nodes = [
        helper.make_node("Gather", [f"{p}table", GRAMS], [f"{p}rows"], axis=0),
        helper.make_node("Unsqueeze", [GRAM_WEIGHTS, f"{p}last_axis"], [f"{p}weights"]),
        helper.make_node("Mul", [f"{p}rows", f"{p}weights"], [f"{p}weighted"]),
        helper.make_node("ReduceSum", [f"{p}weighted", f"{p}sum_axis"], [f"{p}sums"], keepdims=0),
    ]
    start = 0
    for (_, _, _, total), table in zip(lookups, tables):
        end = start + table.shape[1]
        graph.initializer.extend(
            [
                numpy_helper.from_array(np.array([start], np.int64), f"{p}{total}/start"),
                numpy_helper.from_array(np.array([end], np.int64), f"{p}{total}/end"),
            ]
        )
        nodes.append(
            helper.make_node(
                "Slice",
                [f"{p}sums", f"{p}{total}/start", f"{p}{total}/end", f"{p}last_axis"],
                [total],
            )
        )
        start = end
    replaced = {id(node) for _, gather, mul, _ in lookups for node in (gather, mul)}
    replaced |= {id(g.producer[total]) for *_, total in lookups}
    kept = [node for node in graph.node if id(node) not in replaced]
    first_use = min(
        i for i, node in enumerate(kept) if any(total in node.input for *_, total in lookups)
    )
    del graph.node[:]
    graph.node.extend(kept[:first_use] + nodes + kept[first_use:])
    _remove_dead_nodes(graph)
    return len(lookups)


def _gram_lookup(g: _Graph, gather: onnx.NodeProto):
    """(table, gather, mul, sum output) when `gather` starts a weighted n-gram sum, else None."""
    if (
        gather.op_type != "Gather"
        or gather.input[1] != GRAMS
        or gather.input[0] not in g.initializers
        or len(g.initializers[gather.input[0]].dims) != 2
        or any(a.name == "axis" and a.i != 0 for a in gather.attribute)
    ):
        return None
    mul = g.only_consumer(gather.output[0], "Mul")
    if mul is None:
        return None
    weights = [i for i in mul.input if i != gather.output[0]]
    unsqueeze = g.made_by(weights[0], "Unsqueeze") if len(weights) == 1 else None
    if (
        unsqueeze is None
        or unsqueeze.input[0] != GRAM_WEIGHTS
        or not _axes_are(g, unsqueeze, {2, -1})
    ):
        return None
    total = g.only_consumer(mul.output[0], "ReduceSum")
    if total is None or not _axes_are(g, total, {1}) or _keepdims(total):
        return None
    return gather.input[0], gather, mul, total.output[0]


def _axes_are(g: _Graph, node: onnx.NodeProto, allowed: set[int]) -> bool:
    axes = None
    if len(node.input) > 1:
        axes = g.constant(node.input[1])
    for attribute in node.attribute:
        if attribute.name == "axes":
            axes = np.asarray(attribute.ints)
    return axes is not None and axes.size == 1 and int(axes.reshape(-1)[0]) in allowed


def _keepdims(node: onnx.NodeProto) -> bool:
    return any(a.name == "keepdims" and a.i for a in node.attribute) or not any(
        a.name == "keepdims" for a in node.attribute
    )


# ----------------------------------------------------------------------------- shared subgraphs
def share_common_subgraphs(model: onnx.ModelProto) -> int:
    """Compute once what several members compute alike: initializers equal in type, shape and
    bytes become one, then every node whose operator, attributes and (shared) inputs equal an
    earlier node's is dropped and its outputs read from that node. Two `sentence` members of one
    bundle hold the same frozen encoder under two prefixes: the fused graph then runs the
    transformer once, not once per member. Returns how many nodes were dropped. In place.

    Exact: an operator applied to the same inputs with the same attributes gives the same
    outputs. ONNX Runtime's own common-subexpression pass cannot see this, as the members'
    weights are distinct initializers to it. Nodes with subgraphs and random operators are kept.
    """
    graph = model.graph
    outputs = {output.name for output in graph.output}
    renamed: dict[str, str] = {}
    kept_initializers, by_content = [], {}
    for init in graph.initializer:
        key = (init.data_type, tuple(init.dims), _tensor_bytes(init))
        if key in by_content and init.name not in outputs:
            renamed[init.name] = by_content[key]
        else:
            by_content[key] = init.name
            kept_initializers.append(init)
    kept_nodes, by_computation, dropped = [], {}, 0
    for node in graph.node:
        _rename_inputs(node, renamed)
        key = (
            node.domain,
            node.op_type,
            tuple(node.input),
            tuple(a.SerializeToString() for a in node.attribute),
        )
        shareable = not node.op_type.startswith("Random") and not any(
            a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
            for a in node.attribute
        )
        earlier = by_computation.get(key) if shareable else None
        if earlier is not None and not outputs & set(node.output):
            renamed.update(zip(node.output, earlier.output))
            dropped += 1
            continue
        if shareable:
            by_computation[key] = node
        kept_nodes.append(node)
    if not renamed:
        return 0
    del graph.node[:]
    graph.node.extend(kept_nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept_initializers)
    # Shapes recorded for dropped tensors describe tensors no node makes any more.
    shapes = [info for info in graph.value_info if info.name not in renamed]
    del graph.value_info[:]
    graph.value_info.extend(shapes)
    return dropped


def _rename_inputs(node: onnx.NodeProto, renamed: dict[str, str]) -> None:
    """Point `node`'s inputs, and those of its subgraphs (which may read outer names), at the
    tensors they were renamed to."""
    node.input[:] = [renamed.get(name, name) for name in node.input]
    for attribute in node.attribute:
        for sub in [attribute.g, *attribute.graphs]:
            for inner in sub.node:
                _rename_inputs(inner, renamed)


def _tensor_bytes(init: onnx.TensorProto) -> bytes:
    """The values of an initializer as bytes, however it stores them (raw or typed fields)."""
    if init.data_type == onnx.TensorProto.STRING:
        return repr(tuple(init.string_data)).encode()
    return init.raw_data or numpy_helper.to_array(init).tobytes()


# ----------------------------------------------------------------------------- entry points
def optimize_member(model: onnx.ModelProto, *, padding_invariant: bool) -> bool:
    """The rewrites of one member (in place); returns whether its graph now trims its padding
    (only where `padding_invariant`: its family's output does not depend on padding)."""
    drop_index_guards(model)
    return padding_invariant and trim_token_padding(model)


def optimize_fused(model: onnx.ModelProto) -> None:
    """The rewrites of a fused graph (in place): what its members compute alike computed once,
    their n-gram lookups merged."""
    share_common_subgraphs(model)
    merge_gram_lookups(model)
