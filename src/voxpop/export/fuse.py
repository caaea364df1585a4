"""One ONNX graph for the whole ensemble: members side by side on shared inputs, and the weighted
soft vote inside the graph, so ONNX Runtime runs it in one session with one thread pool; with a
stacker, its output (`stack_probs`) beside the vote, from the same member outputs; and, where
asked, each member's probabilities as outputs too (`voxpop evaluate` reads every vote and every
member from one run, so members that share work, such as one sentence encoder, do it once)."""

from __future__ import annotations

import onnx
import onnx.compose
from onnx import TensorProto, helper

from voxpop.ensemble.manifest import STACK_OUTPUT, member_output
from voxpop.export.stack import stack_nodes

OUTPUT = "probs"


def fuse_members(
    members: dict[str, onnx.ModelProto],
    weights: list[float],
    *,
    stacker=None,
    member_outputs: bool = False,
) -> onnx.ModelProto:
    """`members` maps member id -> model (inputs `tokens`/`features`, output `probs`). Returns one
    model with the union of the inputs and output `probs` = sum_i w_i * probs_i / sum_i w_i, with
    a `stacker` (manifest `Stacker`) also its output `stack_probs`, and with `member_outputs`
    each member's probabilities as output `member_output(id)`."""
    total = float(sum(weights))
    graph = helper.make_graph([], "voxpop_ensemble", inputs=[], outputs=[])
    weighted_outputs, member_probs_names = [], []
    for (member_id, model), weight in zip(members.items(), weights):
        prefixed = onnx.compose.add_prefix(model, f"{member_id}/", rename_inputs=False)
        _append_graph(graph, prefixed.graph)
        weight_name = f"{member_id}/vote_weight"
        graph.initializer.append(
            helper.make_tensor(weight_name, TensorProto.FLOAT, [], [weight / total])
        )
        weighted = f"{member_id}/weighted_probs"
        member_probs = prefixed.graph.output[0].name
        member_probs_names.append(member_probs)
        graph.node.append(helper.make_node("Mul", [member_probs, weight_name], [weighted]))
        weighted_outputs.append(weighted)
    graph.node.append(helper.make_node("Sum", weighted_outputs, [OUTPUT], name="vote"))
    first_output = next(iter(members.values())).graph.output[0]
    output = graph.output.add()
    output.CopyFrom(first_output)
    output.name = OUTPUT
    if stacker is not None:
        nodes, initializers = stack_nodes(member_probs_names, stacker)
        graph.node.extend(nodes)
        graph.initializer.extend(initializers)
        stack_output = graph.output.add()
        stack_output.CopyFrom(first_output)
        stack_output.name = STACK_OUTPUT
    if member_outputs:
        for member_id, member_probs in zip(members, member_probs_names):
            name = member_output(member_id)
            graph.node.append(helper.make_node("Identity", [member_probs], [name]))
            output = graph.output.add()
            output.CopyFrom(first_output)
            output.name = name
    fused = helper.make_model(graph, opset_imports=_opset_union(members.values()))
    fused.ir_version = max(m.ir_version for m in members.values())
    fused.producer_name = "voxpop"
    onnx.checker.check_model(fused)
    return fused


def _append_graph(graph: onnx.GraphProto, member: onnx.GraphProto) -> None:
    known_inputs = {i.name for i in graph.input}
    graph.input.extend(i for i in member.input if i.name not in known_inputs)
    graph.node.extend(member.node)
    graph.initializer.extend(member.initializer)
    graph.sparse_initializer.extend(member.sparse_initializer)
    graph.value_info.extend(member.value_info)


def _opset_union(models) -> list[onnx.OperatorSetIdProto]:
    versions: dict[str, int] = {}
    for model in models:
        for opset in model.opset_import:
            versions[opset.domain] = max(versions.get(opset.domain, 0), opset.version)
    return [helper.make_opsetid(domain, version) for domain, version in versions.items()]
