"""Making Keras 3 GRU layers export as fused ONNX `GRU` ops.

Why: with Keras 3.15 + tf2onnx 1.17 every Keras GRU (reset_after on/off, return_sequences, one-way
or Bidirectional) converts to an ONNX `Loop` whose body is the GRU cell. tf2onnx's Keras GRU
pattern (`rnn_utils.keras_gru_pattern`) wants each half as `Split(BiasAdd(MatMul(x, W), b))` with
the biases as separate loop inputs; the Keras 3 cell adds one split-and-squeezed bias with `Add` and
cuts the recurrent MatMul into gates with `StridedSlice`, so nothing matches. The Loop is correct
but pays a per-time-step overhead in ONNX Runtime.

How (an ONNX-level rewrite after conversion, route 2 of issue 3): each `Loop` is matched to its
Keras GRU layer by finding the layer's kernel, bit for bit, among the Loop's constant inputs. The
Loop is then replaced by one ONNX `GRU` node (direction forward) reading the very tensor the Loop
iterates over (time-major [seq, batch, in], already reversed by the graph for a backward layer), so
all surrounding glue (transposes, ReverseSequence, last-step slices, concatenation of directions)
stays as tf2onnx wrote it and keeps its meaning. W/R/B come straight from the Keras weights: Keras
and ONNX share the gate order (z, r, h) and the update rule h = z*h_prev + (1-z)*h_cand;
`reset_after=True` is ONNX `linear_before_reset=1` with separate input and recurrent biases,
`reset_after=False` is `linear_before_reset=0` with the whole bias on the input side. A
Bidirectional layer becomes two one-way GRU nodes (fused, each a single op).

Proof (tests/test_export_gru.py): one-way (reset_after on and off), Bidirectional,
return_sequences with masked attention pooling and a stacked pair match Keras within 1e-5 (seen:
6e-8) on real encoded tweets with random biases, with no `Loop` left and a `GRU` op present.

Speed, Loop / fused, ONNX Runtime 1.32 on 2,000 real tweets pre-padded to 40 tokens, 1 intra-op
thread, 2-core VM shared with other jobs (load 2-11, so +-30%), median of 7 runs. The gain is the
Loop's per-step overhead, so it shrinks as batches grow:
  batch 1:   6.6-17x  (units 16: 10.8x reset_after, 16.8x not; units 64: 6.6x / 8.8x)
  batch 32:  1.3-3.0x (units 16: 2.7x / 3.0x; units 64: 1.45x / 1.3x)
  batch 256: 0.9-1.15x (no gain: the per-step MatMuls dominate)

A Loop that reads a mask (Embedding(mask_zero=True) before the GRU) cannot become a plain ONNX GRU
(masked steps carry the state over); it is refused with a VoxpopError. Loops of other layers are
left untouched, and a model without GRU layers is returned unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from voxpop.data.errors import VoxpopError

# Keras activation name -> ONNX GRU activation name (those that need no alpha/beta).
_ONNX_ACTIVATIONS = {
    "sigmoid": "Sigmoid",
    "tanh": "Tanh",
    "relu": "Relu",
    "softsign": "Softsign",
    "softplus": "Softplus",
}


@dataclass(frozen=True)
class _GruParams:
    """One Keras GRU cell's weights in ONNX GRU layout (num_directions = 1)."""

    name: str
    kernel: np.ndarray  # Keras kernel, used to find the layer's Loop
    W: np.ndarray  # [1, 3*units, input]
    R: np.ndarray  # [1, 3*units, units]
    B: np.ndarray  # [1, 6*units]: input biases then recurrent biases
    units: int
    linear_before_reset: int
    activations: tuple[str, str]


def fuse_gru_loops(onnx_model, keras_model):
    """Return `onnx_model` with the Loop that tf2onnx emits for each Keras GRU replaced by a fused
    ONNX `GRU` op.

    `keras_model` supplies the GRU weights and settings. Loops that belong to no GRU layer are left
    as they are; a model without GRU layers comes back unchanged. The model is edited in place and
    returned. Raises VoxpopError for a GRU whose Loop cannot be fused (masked input, unsupported
    activation).

    Example: `fused = fuse_gru_loops(tf2onnx_model, keras_model)`.
    """
    params = [_gru_params(layer) for layer in _gru_layers(keras_model)]
    if not params:
        return onnx_model
    graph = onnx_model.graph
    opset = _default_opset(onnx_model)
    for loop in [node for node in graph.node if node.op_type == "Loop"]:
        owner = _owning_gru(loop, graph, params)
        if owner is not None:
            _replace_loop(graph, loop, owner, opset=opset)
    _prune_dead_nodes(graph)
    return onnx_model


def _gru_layers(layer):
    """Every recurrent layer with a GRU cell inside `layer` (models, Bidirectional, nesting)."""
    import keras

    if isinstance(layer, keras.layers.Bidirectional):
        yield from _gru_layers(layer.forward_layer)
        yield from _gru_layers(layer.backward_layer)
    elif isinstance(layer, keras.layers.RNN):
        if isinstance(layer.cell, keras.layers.GRUCell):
            yield layer
    elif isinstance(layer, keras.Model):
        for inner in layer.layers:
            yield from _gru_layers(inner)


def _gru_params(layer) -> _GruParams:
    cell = layer.cell
    units = cell.units
    kernel = np.asarray(cell.kernel.numpy(), dtype=np.float32)
    recurrent = np.asarray(cell.recurrent_kernel.numpy(), dtype=np.float32)
    bias = _onnx_bias(cell, units)
    return _GruParams(
        name=layer.name,
        kernel=kernel,
        W=kernel.T[np.newaxis].copy(),
        R=recurrent.T[np.newaxis].copy(),
        B=bias[np.newaxis],
        units=units,
        linear_before_reset=int(cell.reset_after),
        activations=(
            _onnx_activation(layer.name, cell.recurrent_activation),
            _onnx_activation(layer.name, cell.activation),
        ),
    )


def _onnx_bias(cell, units: int) -> np.ndarray:
    """ONNX B = [Wb_zrh, Rb_zrh]; with reset_after=False Keras has only the input-side bias."""
    if not cell.use_bias:
        return np.zeros(6 * units, dtype=np.float32)
    bias = np.asarray(cell.bias.numpy(), dtype=np.float32)
    if cell.reset_after:
        return bias.reshape(-1)  # Keras shape [2, 3*units]: row 0 input, row 1 recurrent
    return np.concatenate([bias, np.zeros_like(bias)])


def _onnx_activation(layer_name: str, activation) -> str:
    import keras

    name = keras.activations.serialize(activation)
    if not isinstance(name, str) or name not in _ONNX_ACTIVATIONS:
        raise VoxpopError(
            f"GRU layer {layer_name!r}: activation {name!r} cannot be exported as an ONNX GRU "
            f"(valid: {', '.join(_ONNX_ACTIVATIONS)})"
        )
    return _ONNX_ACTIVATIONS[name]


def _default_opset(onnx_model) -> int:
    return next(o.version for o in onnx_model.opset_import if o.domain in ("", "ai.onnx"))


def _owning_gru(loop, graph, params: list[_GruParams]) -> _GruParams | None:
    """The GRU whose kernel is one of the Loop's constant inputs, or None (not a GRU loop)."""
    from onnx import numpy_helper

    inits = {init.name: init for init in graph.initializer}
    names = set(loop.input) | _outer_references(loop.attribute[0].g)
    constants = [numpy_helper.to_array(inits[n]) for n in names if n in inits]
    for gru in params:
        if any(c.shape == gru.kernel.shape and np.array_equal(c, gru.kernel) for c in constants):
            return gru
    return None


def _outer_references(body) -> set[str]:
    """Names a subgraph reads from its enclosing graph (also through nested subgraphs)."""
    defined = {i.name for i in body.input} | {i.name for i in body.initializer}
    defined |= {out for node in body.node for out in node.output}
    used = _used_names(body)
    return used - defined - {""}


def _used_names(graph) -> set[str]:
    """Every name read by a node of `graph` or of any subgraph within it."""
    used = set()
    for node in graph.node:
        used.update(node.input)
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                used |= _used_names(sub)
    return used


def _replace_loop(graph, loop, gru: _GruParams, *, opset: int) -> None:
    """Swap `loop` for GRU + Squeeze nodes that produce the Loop's used outputs under their names."""
    from onnx import helper, numpy_helper

    body = loop.attribute[0].g
    inits = {init.name for init in graph.initializer}
    carried = list(loop.input[2:])  # Loop inputs: trip count, condition, then carried values
    sequence = _sequence_input(loop, body, inits, gru)
    state_index = _state_index(loop, body, inits, gru)
    step_outputs = list(loop.output[len(carried) :])
    if len(step_outputs) != 1:
        raise VoxpopError(f"GRU layer {gru.name!r}: its ONNX Loop has an unexpected shape")
    _refuse_other_used_outputs(graph, loop, gru, keep={state_index, len(carried)})

    prefix = f"{loop.name}/fused_gru"
    graph.initializer.extend(
        numpy_helper.from_array(array, f"{prefix}/{key}")
        for key, array in (("W", gru.W), ("R", gru.R), ("B", gru.B))
    )
    initial_h = f"{prefix}/initial_h"
    new_nodes = [
        _axes_node("Unsqueeze", carried[state_index], initial_h, axis=0, opset=opset, graph=graph),
        helper.make_node(
            "GRU",
            [sequence, f"{prefix}/W", f"{prefix}/R", f"{prefix}/B", "", initial_h],
            [f"{prefix}/Y", f"{prefix}/Y_h"],
            name=prefix,
            hidden_size=gru.units,
            linear_before_reset=gru.linear_before_reset,
            activations=list(gru.activations),
            direction="forward",
        ),
        # Y is [seq, 1, batch, units]: the Loop's stacked step outputs are [seq, batch, units].
        _axes_node("Squeeze", f"{prefix}/Y", step_outputs[0], axis=1, opset=opset, graph=graph),
        _axes_node(
            "Squeeze", f"{prefix}/Y_h", loop.output[state_index], axis=0, opset=opset, graph=graph
        ),
    ]
    position = list(graph.node).index(loop)
    graph.node.remove(loop)
    for offset, node in enumerate(new_nodes):
        graph.node.insert(position + offset, node)


def _sequence_input(loop, body, inits: set[str], gru: _GruParams) -> str:
    """The outer tensor the Loop reads one time step of per iteration (Gather by step index)."""
    outer = _outer_references(body)
    reads = {
        node.input[0]
        for node in body.node
        if node.op_type == "Gather" and node.input[0] in outer and node.input[0] not in inits
    }
    if len(reads) != 1:
        raise VoxpopError(
            f"GRU layer {gru.name!r} reads {len(reads)} sequences (a mask from "
            "Embedding(mask_zero=True)?); only unmasked GRUs export as fused ONNX GRU ops: "
            "pre-pad with 0 and drop mask_zero"
        )
    return reads.pop()


def _state_index(loop, body, inits: set[str], gru: _GruParams) -> int:
    """Position (among carried values) of the hidden state: the one float value not a weight."""
    from onnx import TensorProto

    carried = list(loop.input[2:])
    body_inputs = list(body.input[2:])  # body inputs: iteration number, condition, carried
    floats = [
        index
        for index, (name, body_input) in enumerate(zip(carried, body_inputs))
        if body_input.type.tensor_type.elem_type == TensorProto.FLOAT and name not in inits
    ]
    if len(floats) != 1:
        raise VoxpopError(f"GRU layer {gru.name!r}: its ONNX Loop carries {len(floats)} states")
    return floats[0]


def _refuse_other_used_outputs(graph, loop, gru: _GruParams, *, keep: set[int]) -> None:
    used = _used_names(graph) | {out.name for out in graph.output}
    extra = [name for i, name in enumerate(loop.output) if i not in keep and name in used]
    if extra:
        raise VoxpopError(f"GRU layer {gru.name!r}: Loop outputs {extra} are used elsewhere")


def _axes_node(op: str, source: str, target: str, *, axis: int, opset: int, graph):
    """Squeeze/Unsqueeze on one axis: axes are an input from opset 13, an attribute before."""
    from onnx import helper, numpy_helper

    if opset < 13:
        return helper.make_node(op, [source], [target], axes=[axis])
    axes = f"{target}/axes"
    graph.initializer.append(numpy_helper.from_array(np.array([axis], dtype=np.int64), axes))
    return helper.make_node(op, [source, axes], [target])


def _prune_dead_nodes(graph) -> None:
    """Drop nodes and initializers nothing reads any more (the Loops' condition and shape glue)."""
    while True:
        used = _used_names(graph) | {out.name for out in graph.output}
        dead = [node for node in graph.node if not any(out in used for out in node.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    unused = [init for init in graph.initializer if init.name not in used]
    for init in unused:
        graph.initializer.remove(init)
