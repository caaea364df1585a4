"""export_report.md: what was selected and why, the votes' validation scores, and the proofs."""

from __future__ import annotations

from voxpop.ensemble.manifest import Manifest

ROWS = {"validation": "validation rows", "out_of_fold": "out-of-fold rows (train + val)"}


def render_report(manifest: Manifest, candidates, choice) -> str:
    """Markdown for a bundle's manifest (before `files` is filled), the candidates it was chosen
    among (a run's checkpoints, or a bagged run's `BagCandidate`s) and its Choice."""
    sections = [
        _header(manifest),
        _candidates(manifest, candidates, choice),
        _votes(manifest),
        _stacking(manifest),
        _cost(manifest),
        _members(manifest),
        _fused(manifest),
        _quantization(manifest),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


def _header(manifest: Manifest) -> str:
    selection = manifest.selection
    return (
        "# Export report\n\n"
        f"- run: `{manifest.source_run}`\n"
        f"- selection: {selection.method} by {selection.metric} on "
        f"{selection.rows:,} {ROWS[selection.on]} only, size {selection.size}\n"
        + (
            f"- members are bags: each one graph of its {manifest.members[0].bag.folds} fold "
            "models, its probabilities their mean\n"
            if manifest.members[0].bag
            else ""
        )
        + f"- labels: {', '.join(manifest.labels)}\n"
        f"- opset {manifest.opset}, parity tolerance {manifest.parity_tol:g}\n"
        f"- voting default: {manifest.voting.default}\n"
        f"- check rows: {len(manifest.check_rows.texts)} validation texts with each member's "
        "probabilities, rerun by every load"
    )


def _table(title: str, header: list[str], rows: list[list]) -> str:
    """A Markdown section holding one table (cells already formatted)."""
    lines = [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows])


def _candidates(manifest: Manifest, candidates, choice) -> str:
    member_of = {m.bag.config_id if m.bag else m.checkpoint: m for m in manifest.members}
    metric = manifest.selection.metric
    costs = choice.budget.costs if choice.budget else None
    rows = []
    for checkpoint in sorted(candidates, key=lambda c: (-c.score(metric), c.name)):
        member = member_of.get(checkpoint.name)
        row = [
            checkpoint.name,
            checkpoint.family,
            checkpoint.metrics.get("epoch", ""),
            f"{checkpoint.metrics['val_macro_f1']:.4f}",
            member.id if member else "-",
            member.weight if member else "-",
        ]
        if costs:  # alone: its graph and the encoding of its inputs
            row.append(
                f"{costs.of([checkpoint.name]):.3f}" if checkpoint.name in costs.graph_ms else "-"
            )
        rows.append(row + [choice.reasons.get(checkpoint.name, "")])
    bagged = manifest.selection.on == "out_of_fold"
    header = [
        "bag" if bagged else "checkpoint",
        "family",
        "epoch",
        "out-of-fold macro-F1" if bagged else "val macro-F1",
        "member",
        "weight",
    ]
    return _table("Candidates", header + (["ms/row alone"] if costs else []) + ["why"], rows)


def _votes(manifest: Manifest) -> str:
    scores = manifest.selection.val_scores
    picks = " ".join(manifest.selection.picks)
    rows = ROWS[manifest.selection.on]
    return (
        f"## Macro-F1 of the votes on the {rows} (stored probabilities)\n\n"
        + "\n".join(f"- {voting}: {score:.4f}" for voting, score in scores.items())
        + f"\n\nPicks in order: {picks}; weights {manifest.voting.weights}"
    )


def _stacking(manifest: Manifest) -> str:
    stacker = manifest.stacker
    if stacker is None:
        return ""
    scores = stacker.cv_macro_f1
    chosen = (
        "the stacker is the default voting"
        if manifest.voting.default == "stack"
        else f"the stacker does not score higher, so {manifest.voting.default} stays the "
        "default (`--voting stack` still runs it)"
    )
    fused = manifest.fused
    in_graph = (
        f"fused.onnx outputs it as `stack_probs`, within {fused.stack_max_abs_diff:.2e} of numpy"
        if fused and fused.stack_max_abs_diff is not None
        else "applied with numpy from the manifest's numbers (no fused graph)"
    )
    return (
        "## Stacking (--combine stack)\n\n"
        f"Multinomial logistic regression (C={stacker.C:g}) over the members' log-probabilities, "
        f"fitted on {stacker.rows} {stacker.fit_on.replace('_', '-')} rows. The same rows chose "
        f"the members, so both combinations are scored by {stacker.folds}-fold cross-validation "
        "over them (each fold predicted by a combination fitted on the others):\n\n"
        f"- stack: {scores['stack']:.4f}\n"
        f"- greedy weighted vote: {scores['weighted']:.4f}\n\n"
        f"Chosen: {chosen}; {in_graph}."
    )


def _cost(manifest: Manifest) -> str:
    cost = manifest.selection.cost
    if cost is None:
        return ""
    members = ", ".join(f"{member_id} {ms:.3f}" for member_id, ms in cost.members_ms.items())
    return (
        "## Cost per row (--max-ms-per-row)\n\n"
        f"Measured at export with ONNX Runtime on one thread over {cost.rows} validation texts "
        "(best of 3, before any quantization); an ensemble costs the encoding of its members' "
        "inputs (once, shared) plus each member's graph.\n\n"
        f"- budget: {cost.max_ms_per_row:g} ms per row\n"
        f"- encoding: {cost.encode_ms:.3f} ms per row\n"
        f"- member graphs: {members}\n"
        f"- total: {cost.total_ms:.3f} ms per row"
    )


def _members(manifest: Manifest) -> str:
    rows = []
    for m in manifest.members:
        graph = m.graph
        ops = [graph.lstm, graph.gru, graph.loop] if graph else ["-", "-", "-"]
        rows.append(
            [
                m.id,
                m.kind,
                m.parity.rows,
                f"{m.parity.max_abs_diff:.2e}",
                f"{m.parity.argmax_agreement:.2%}",
                *ops,
            ]
        )
    return _table(
        "Members: conversion proof (ONNX Runtime vs Keras on validation rows; a bag vs the mean "
        "of its fold models)",
        ["member", "family", "rows", "max abs diff", "argmax agreement", "LSTM", "GRU", "Loop"],
        rows,
    )


def _fused(manifest: Manifest) -> str:
    fused = manifest.fused
    if not fused:
        return "## Fused graph\n\nNot written (--no-fuse)."
    members = (
        f" It also outputs each member's probabilities (`voxpop evaluate` reads them from one "
        f"run), within {fused.member_max_abs_diff:.2e} of the member graphs."
        if fused.member_max_abs_diff is not None
        else ""
    )
    return (
        "## Fused graph\n\n"
        f"`{fused.file}`: all members and the weighted soft vote in one graph; its output differs "
        f"from the Python-side vote by at most {fused.max_abs_diff:.2e}.{members}"
    )


def _quantization(manifest: Manifest) -> str:
    check = manifest.quantization_check
    if not check:
        return ""
    scores, sizes = check.val_macro_f1, check.bytes
    verdict = "kept" if check.kept else "discarded (fp32 files kept)"
    offered = ", ".join(f"{m.id} ({m.family})" for m in manifest.members if m.id in check.members)
    fp32 = ", ".join(f"{m.id} ({m.family})" for m in manifest.members if m.id not in check.members)
    return (
        "## Dynamic int8 quantization\n\n"
        "Only members with a recurrent op are quantized (their LSTM/GRU ops, matrix products and "
        "lookups): elsewhere int8 loses or gains nothing (convolutions, n-gram members; "
        "bench/RESULTS.md, graph).\n\n"
        f"- int8 offered for: {offered or 'no member'}; fp32 always: {fp32 or 'no member'}\n"
        f"- val macro-F1 of the weighted vote: fp32 {scores['fp32']:.4f}, int8 {scores['int8']:.4f} "
        f"(allowed drop {check.max_f1_drop:.3f})\n"
        f"- bytes: fp32 {sizes['fp32']:,}, int8 {sizes['int8']:,}\n"
        f"- int8 {verdict}"
    )
