"""`export_bundle`: a tuning run directory -> a proven ONNX ensemble bundle (DESIGN.md section 4).

Members are chosen on validation data (of a bagged run, `--folds K`: bags, each one graph of its
K fold models, chosen on their out-of-fold rows: `voxpop.export.bagged`), converted, proven
(parity with Keras, fused recurrent ops),
optionally stacked (a logistic regression over the members, `export.stack`), fused into one
graph and quantized; the first validation rows are stored as check rows
with each final member's probabilities; the manifest is built as the typed records of
`voxpop.ensemble.manifest` and written (and optionally signed) by the bundle's owner. The whole
bundle is written to a temporary sibling directory that is renamed into place only when complete
and loaded back by the ensemble's own reader, every graph checked on the check rows.
"""

from __future__ import annotations

import csv
import datetime
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import onnx

from voxpop import __version__
from voxpop.data import INPUT_DTYPES
from voxpop.data.atomic import atomic_path, write_text
from voxpop.data.errors import VoxpopError
from voxpop.data.rundir import Checkpoint, Run, read_run
from voxpop.data.sentence import EMBEDDING_INPUT
from voxpop.ensemble import Ensemble
from voxpop.ensemble.bundle import MANIFEST, write_manifest
from voxpop.ensemble.manifest import (
    CHECK_ROWS,
    CHECK_TEXT_CHARS,
    CHECK_VALUES,
    MAX_MEMBERS,
    SCHEMA_VERSION,
    STACK_OUTPUT,
    BagRecord,
    CheckRows,
    CostCheck,
    Fused,
    GraphOps,
    InputSpec,
    Manifest,
    Member,
    Parity,
    QuantizationCheck,
    Selection,
    Stacker,
    ValMetrics,
    Voting,
    check_values,
    member_output,
)
from voxpop.ensemble.metrics import macro_f1
from voxpop.ensemble.voting import stack_probs, vote
from voxpop.export.bagged import BagCandidate, bag_candidates, compose_folds
from voxpop.export.cost import Budget, measure_costs
from voxpop.export.fuse import fuse_members
from voxpop.export.optimize import optimize_fused, optimize_member
from voxpop.export.options import (
    COMBINES,
    DEFAULTS,
    MAX_F1_DROP,
    MAX_OPSET,
    MIN_OPSET,
    PARITY_ROWS,
    QUANTIZATIONS,
    ExportOptions,
)
from voxpop.export.quantize import INT8_OPS, int8_pays, onnx_outputs, onnx_probs, quantize_int8
from voxpop.export.report import render_report
from voxpop.export.select import Choice, candidates_of, check_selection, select_members
from voxpop.export.stack import fit_stacker, stack_wins, stacking_rows

FUSED_TOLERANCE = 1e-5
VAL_METRIC_KEYS = ("val_macro_f1", "val_accuracy", "val_loss")

# called after each member is converted and proven: (members done, members in total, member id)
MemberProgress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class _Pool:
    """What export selects among and on which rows: a run's checkpoints on its validation rows,
    or a bagged run's bags (`BagCandidate`) on its out-of-fold rows (`Selection.on`)."""

    candidates: list
    y: np.ndarray
    on: str


def _pool(run: Run) -> _Pool:
    if run.bagged:  # its checkpoints' probabilities are of fold rows: the bags are the candidates
        return _Pool(bag_candidates(run), np.asarray(run.y_oof), "out_of_fold")
    return _Pool(run.checkpoints, np.asarray(run.y_val), "validation")


def export_bundle(
    run_dir,
    out,
    *,
    size: int = DEFAULTS.size,
    select: str = DEFAULTS.select,
    metric: str = DEFAULTS.metric,
    opset: int = DEFAULTS.opset,
    fuse: bool = DEFAULTS.fuse,
    quantize: str = DEFAULTS.quantize,
    parity_tol: float = DEFAULTS.parity_tol,
    force: bool = False,
    on_member: MemberProgress | None = None,
    sign: str | Path | None = None,
    combine: str = DEFAULTS.combine,
    max_ms_per_row: float | None = DEFAULTS.max_ms_per_row,
) -> Path:
    """Export the best checkpoints of the run at `run_dir` as an ensemble bundle at `out`.

    sign: an Ed25519 private key (PEM) to sign the manifest with (ensemble.sig).
    combine: vote, or stack (also fit a stacker; the default voting when it scores higher).
    max_ms_per_row: keep the best ensemble whose measured cost per row fits (every candidate is
    converted first, to be measured); VoxpopError when no candidate fits alone.
    Raises VoxpopError when `out` exists (unless `force`), for an invalid option or key, or when
    a member fails its parity or graph check (naming the member). Returns `out`.
    """
    options = ExportOptions(
        size=size,
        select=select,
        metric=metric,
        opset=opset,
        fuse=fuse,
        quantize=quantize,
        parity_tol=parity_tol,
        sign=None if sign is None else Path(sign),
        combine=combine,
        max_ms_per_row=max_ms_per_row,
    )
    out = Path(out)
    _check_options(out, options, force=force)
    signing_key = _signing_key(options.sign)  # a bad key fails now, not after the conversions
    run = read_run(run_dir)
    check_selection(method=select, size=size, metric=metric)
    pool = _pool(run)
    encoder = _SentenceEncoder(run)
    converted, budget = {}, None
    if options.max_ms_per_row is not None:
        converted, budget = _measured_budget(run, pool, options, encoder)
    choice = select_members(
        pool.candidates, pool.y, method=select, size=size, metric=metric, budget=budget
    )
    stacker = None
    if options.combine == "stack":  # before the conversions: a stacker that cannot fit fails now
        stacker = fit_stacker(
            stacking_rows(run, choice.members), n_classes=len(run.preprocessor.labels)
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        _write_bundle(
            tmp,
            run,
            choice,
            options,
            on_member or (lambda *_: None),
            signing_key,
            stacker,
            converted,
            encoder,
            pool,
        )
    return out


def _measured_budget(
    run: Run, pool: _Pool, options: ExportOptions, encoder: _SentenceEncoder
) -> tuple[dict, Budget]:
    """Every candidate converted to ONNX (candidate name -> ModelProto, reused for the members;
    a bag as its composed graph) and the budget with their measured costs on the validation
    texts."""
    candidates, _ = candidates_of(pool.candidates, pool.y, metric=options.metric)
    converted = {
        c.name: _convert(_load_models(c), options, encoder, name=c.name) for c in candidates
    }
    val = run.rows("val")
    features = val[run.feature_cols].to_numpy(np.float64) if run.feature_cols else None
    costs = measure_costs(converted, run.preprocessor, val["text"].astype(str).tolist(), features)
    return converted, Budget(options.max_ms_per_row, costs)


def _cost_check(choice: Choice, members: list[Member]) -> CostCheck | None:
    budget = choice.budget
    if budget is None:
        return None
    names = [c.name for c in choice.members]
    costs = budget.costs
    inputs = frozenset().union(*(costs.inputs[name] for name in names))
    return CostCheck(
        max_ms_per_row=budget.max_ms_per_row,
        rows=costs.rows,
        encode_ms=costs.encode_ms(inputs),
        members_ms={m.id: costs.graph_ms[name] for m, name in zip(members, names)},
        total_ms=costs.of(names),
    )


def _signing_key(path: Path | None):
    if path is None:
        return None
    from voxpop.ensemble.signing import load_private_key

    return load_private_key(path)


def _check_options(out: Path, options: ExportOptions, *, force: bool) -> None:
    if options.combine not in COMBINES:
        raise VoxpopError(
            f"--combine: unknown value {options.combine!r} (choose from {', '.join(COMBINES)})"
        )
    if options.max_ms_per_row is not None and not options.max_ms_per_row > 0:
        raise VoxpopError(f"--max-ms-per-row: must be > 0, got {options.max_ms_per_row:g}")
    if options.quantize not in QUANTIZATIONS:
        raise VoxpopError(
            f"--quantize: unknown value {options.quantize!r} (choose from {', '.join(QUANTIZATIONS)})"
        )
    if not MIN_OPSET <= options.opset <= MAX_OPSET:
        raise VoxpopError(
            f"--opset: {options.opset} is not supported (valid: {MIN_OPSET} to {MAX_OPSET})"
        )
    if options.size > MAX_MEMBERS:
        raise VoxpopError(
            f"--size: a bundle holds at most {MAX_MEMBERS} members, got {options.size}"
        )
    if not options.parity_tol > 0:
        raise VoxpopError(f"--parity-tol: must be > 0, got {options.parity_tol}")
    if out.exists() and not force:
        raise VoxpopError(f"{out}: already exists (use --force to replace it)")
    if out.exists() and not (out / MANIFEST).is_file():
        # --force replaces bundles only, never an unrelated directory or file
        raise VoxpopError(f"{out}: exists and is not an ensemble bundle; refusing to replace it")


def _write_bundle(
    tmp: Path,
    run: Run,
    choice: Choice,
    options: ExportOptions,
    on_member,
    signing_key,
    stacker: Stacker | None,
    converted: dict,
    encoder: _SentenceEncoder,
    pool: _Pool,
) -> None:
    (tmp / "members").mkdir(parents=True)
    ids = [f"m{i + 1}" for i in range(len(choice.members))]
    val_inputs = run.encode(run.rows("val"))
    parity_inputs = {name: array[:PARITY_ROWS] for name, array in val_inputs.items()}
    members, parity_probs = [], []
    for done, (member_id, candidate, weight) in enumerate(
        zip(ids, choice.members, choice.weights), start=1
    ):
        member, probs = _export_member(
            tmp,
            member_id=member_id,
            candidate=candidate,
            weight=weight,
            parity_inputs=parity_inputs,
            options=options,
            encoder=encoder,
            onnx_model=converted.get(candidate.name),
        )
        members.append(member)
        parity_probs.append(probs)
        on_member(done, len(ids), member_id)
    fused = _fuse(tmp, members, parity_probs, parity_inputs, stacker) if options.fuse else None
    quantization = None
    if options.quantize == "int8":
        quantization = _quantize(tmp, members, fused, val_inputs, run.y_val)
    run.copy_preprocess(tmp / "preprocess.json")
    # QUOTE_ALL: pandas leaves a field with a lone "\r" unquoted, which splits the row on reading
    run.rows("train")[["text", "label"]].to_csv(
        tmp / "baseline_train.csv", index=False, quoting=csv.QUOTE_ALL
    )
    check_rows = _check_rows(tmp, run, members)
    manifest = _manifest(
        run, pool, choice, options, members, fused, quantization, check_rows, stacker
    )
    write_text(tmp / "export_report.md", render_report(manifest, pool.candidates, choice))
    write_manifest(tmp, manifest, sign_with=signing_key)
    # The ensemble's own reader must accept what we wrote, every graph on the check rows.
    loaded = Ensemble.load(tmp, device="cpu", fused=False)
    loaded.verify_all()
    loaded.close()


class _SentenceEncoder:
    """The run's pooled sentence encoder (if it has one), loaded when a member first needs it:
    each sentence head becomes one member with it in front, and the parity rows' embeddings
    are computed once, by the same graph, for the Keras side of every head's parity check."""

    def __init__(self, run: Run):
        self.run = run
        self._parity_embeddings = None

    @cached_property
    def pooled(self) -> onnx.ModelProto:
        path = self.run.sentence_encoder_path
        if path is None:
            raise VoxpopError(
                f"{self.run.path}: a sentence member was selected, but the run has "
                "no sentence encoder (was it tuned with --sentence-encoder?)"
            )
        return onnx.load_model(path)

    def parity_embeddings(self, parity_inputs: dict) -> dict:
        """The embeddings of the parity rows (the same rows for every member of one export)."""
        if self._parity_embeddings is None:
            from voxpop.ensemble.sessions import SENTENCE_KEY, run_by_length
            from voxpop.models.sentence import INPUTS, Embedder

            # As the member runs them: by word-piece count, each run cut to its longest row.
            self._parity_embeddings = {
                EMBEDDING_INPUT: run_by_length(
                    Embedder(self.pooled).session,
                    {name: parity_inputs[name] for name in INPUTS},
                    key=SENTENCE_KEY,
                    output=EMBEDDING_INPUT,
                )
            }
        return self._parity_embeddings

    def head_opset(self) -> int:
        """The head converts at the encoder's opset, so the member has one."""
        from voxpop.models.sentence import default_opset

        return min(max(default_opset(self.pooled), MIN_OPSET), MAX_OPSET)


def _reads_sentence(model) -> bool:
    return [t.name for t in model.inputs] == [EMBEDDING_INPUT]


def _load_models(candidate) -> list:
    """The Keras models of a candidate: a checkpoint's one, a bag's K fold models."""
    from voxpop.models import load_model

    paths = candidate.model_paths if isinstance(candidate, BagCandidate) else [candidate.model_path]
    return [load_model(path) for path in paths]


def _convert(
    models: list, options: ExportOptions, encoder: _SentenceEncoder, *, name: str
) -> onnx.ModelProto:
    """The member graph of a candidate's Keras models (one, or a bag's K composed into one graph
    whose `probs` is their mean): sentence heads with the run's encoder in front, once for all
    of a bag's heads (what the bundle runs, and what --max-ms-per-row must measure), else the
    models alone."""
    from voxpop.export.convert import to_onnx

    sentence = _reads_sentence(models[0])
    opset = encoder.head_opset() if sentence else options.opset
    graphs = [to_onnx(model, opset=opset) for model in models]
    graph = graphs[0] if len(graphs) == 1 else compose_folds(graphs, name=f"voxpop_bag_{name}")
    if sentence:
        from voxpop.models.sentence import with_head

        return with_head(encoder.pooled, graph)
    return graph


def _export_member(
    tmp: Path,
    *,
    member_id: str,
    candidate: Checkpoint | BagCandidate,
    weight: float,
    parity_inputs: dict,
    options: ExportOptions,
    encoder: _SentenceEncoder,
    onnx_model=None,
) -> tuple[Member, np.ndarray]:
    """Convert one checkpoint or bag (unless `onnx_model` is its conversion already), rewrite it
    (voxpop.export.optimize), prove the final graph (graph check, parity with Keras: of a bag,
    with the mean of its fold models) and write members/<id>.onnx. Returns the member and its
    graph's probabilities on the parity rows."""
    from voxpop.export.checks import parity, rnn_fusion
    from voxpop.models import padding_invariant

    bag = candidate if isinstance(candidate, BagCandidate) else None
    if bag:
        label = f"member {member_id} (bag {candidate.name} of {bag.folds} folds, {bag.family})"
    else:
        label = f"member {member_id} ({candidate.name}, {candidate.family})"
    models = _load_models(candidate)
    if onnx_model is None:
        onnx_model = _convert(models, options, encoder, name=candidate.name)
    if _reads_sentence(models[0]):  # the encoder in front of the head: parity of the whole
        # against the Keras head(s) on the same graph's embeddings of the same rows
        inputs = {**parity_inputs, **encoder.parity_embeddings(parity_inputs)}
    else:
        inputs = {t.name: parity_inputs[t.name] for t in models[0].inputs}
    try:
        graph = rnn_fusion(onnx_model)
    except VoxpopError as err:
        raise VoxpopError(f"{label}: {err}") from None
    trims = optimize_member(
        onnx_model, padding_invariant=padding_invariant(candidate.family, candidate.config)
    )
    proof = parity(models, onnx_model, inputs, trims_padding=trims)
    _check_parity(label, proof, options.parity_tol)
    relative = f"members/{member_id}.onnx"
    onnx.save_model(onnx_model, tmp / relative)
    metrics = {k: _finite(candidate.metrics.get(k)) for k in VAL_METRIC_KEYS}
    epoch = None if bag else candidate.metrics.get("epoch")
    member = Member(
        id=member_id,
        file=relative,
        family=candidate.family,
        config=candidate.config,
        trial_id=candidate.trial_id,
        checkpoint=None if bag else candidate.name,
        bag=None
        if bag is None
        else BagRecord(
            config_id=bag.name,
            folds=bag.folds,
            checkpoints=[c.name for c in bag.bag.checkpoints],
        ),
        epoch=None if epoch is None else int(epoch),
        inputs=[i.name for i in onnx_model.graph.input],
        val_metrics=ValMetrics(**metrics),
        weight=float(weight),
        parity=Parity(
            max_abs_diff=float(proof["max_abs_diff"]),
            argmax_agreement=float(proof["argmax_agreement"]),
            rows=int(proof["rows"]),
        ),
        graph=GraphOps(**{k: int(v) for k, v in graph.items()}),
        trims_padding=trims,
    )
    return member, proof["onnx_probs"]


def _finite(value) -> float | None:
    """A metric as the manifest stores it: a finite float, or None (absent, NaN or infinite)."""
    return float(value) if value is not None and np.isfinite(value) else None


def _check_parity(label: str, proof: dict, tolerance: float) -> None:
    if proof["max_abs_diff"] > tolerance or proof["argmax_agreement"] < 1.0:
        raise VoxpopError(
            f"{label}: ONNX Runtime differs from Keras on {proof['rows']} validation rows: "
            f"max abs diff {proof['max_abs_diff']:.2e} (--parity-tol {tolerance:g}), "
            f"argmax agreement {proof['argmax_agreement']:.2%} (must be 100%)"
        )


def _fuse(
    tmp: Path,
    members: list[Member],
    member_probs: list[np.ndarray],
    inputs: dict,
    stacker: Stacker | None,
) -> Fused:
    """Write fused.onnx and prove, from one pass over `inputs`, that it equals the Python-side
    weighted soft vote of the members, its stack output the stacker applied with numpy, and its
    member outputs the member graphs (`member_probs`: theirs on `inputs`, from the parity proof)."""
    models = {m.id: onnx.load_model(tmp / m.file) for m in members}
    weights = [m.weight for m in members]
    fused = fuse_members(models, weights, stacker=stacker, member_outputs=True)
    optimize_fused(fused)
    onnx.save_model(fused, tmp / "fused.onnx")
    # output -> (what it must equal, those probabilities)
    expected = {
        "probs": (
            "the weighted vote of its members",
            vote(member_probs, voting="soft", weights=weights)[0],
        )
    }
    if stacker is not None:
        expected[STACK_OUTPUT] = ("the stacker of its members", stack_probs(member_probs, stacker))
    expected.update(
        (member_output(m.id), (f"member {m.id}'s graph", p)) for m, p in zip(members, member_probs)
    )
    got = onnx_outputs(
        tmp / "fused.onnx",
        inputs,
        outputs=list(expected),
        trims_padding=any(m.trims_padding for m in members),
    )
    diffs = {}
    for (name, (what, probs)), values in zip(expected.items(), got):
        diffs[name] = float(np.abs(values - probs).max())
        if diffs[name] > FUSED_TOLERANCE:
            raise VoxpopError(
                f"fused.onnx differs from {what} by {diffs[name]:.2e} "
                f"(limit {FUSED_TOLERANCE:g}); export with --no-fuse"
            )
    return Fused(
        file="fused.onnx",
        weights=weights,
        max_abs_diff=diffs["probs"],
        stack_max_abs_diff=diffs.get(STACK_OUTPUT),
        member_max_abs_diff=max(diffs[member_output(m.id)] for m in members),
    )


def _quantize(
    tmp: Path, members: list[Member], fused: Fused | None, inputs: dict, y_val
) -> QuantizationCheck:
    """Quantize the members where int8 pays (`int8_pays`: a recurrent op), and their part of the
    fused graph; keep int8 only if some member is quantized and val macro-F1 holds up."""
    offered = [m for m in members if int8_pays(onnx.load_model(tmp / m.file))]
    int8 = {m.file: tmp / f"{m.file}.int8" for m in offered}
    for member in offered:
        quantize_int8(tmp / member.file, int8[member.file])
    if fused and offered:
        prefixes = tuple(f"{m.id}/" for m in offered)
        nodes = [
            node.name
            for node in onnx.load_model(tmp / fused.file).graph.node
            if node.op_type in INT8_OPS and node.name.startswith(prefixes)
        ]
        int8[fused.file] = tmp / f"{fused.file}.int8"
        quantize_int8(tmp / fused.file, int8[fused.file], nodes=nodes)
    weights = [m.weight for m in members]
    scores = {
        "fp32": _vote_f1(tmp, members, [tmp / m.file for m in members], weights, inputs, y_val),
        "int8": _vote_f1(
            tmp, members, [int8.get(m.file, tmp / m.file) for m in members], weights, inputs, y_val
        ),
    }
    files = [m.file for m in members] + ([fused.file] if fused else [])
    sizes = {
        "fp32": sum((tmp / n).stat().st_size for n in files),
        "int8": sum(int8.get(n, tmp / n).stat().st_size for n in files),
    }
    kept = bool(offered) and scores["fp32"] - scores["int8"] <= MAX_F1_DROP
    for name, path in int8.items():
        if kept:
            path.replace(tmp / name)
        else:
            path.unlink()
    return QuantizationCheck(
        requested="int8",
        kept=kept,
        val_macro_f1=scores,
        bytes=sizes,
        max_f1_drop=MAX_F1_DROP,
        members=[m.id for m in offered],
    )


def _check_rows(tmp: Path, run: Run, members: list[Member]) -> CheckRows:
    """The first validation rows (texts cut to CHECK_TEXT_CHARS, fewer rows when there are many
    labels) with each final (fused, quantized) member's probabilities on them."""
    n_labels = len(run.preprocessor.labels)
    n_rows = max(1, min(CHECK_ROWS, CHECK_VALUES // (n_labels * len(members))))
    rows = run.rows("val").iloc[:n_rows]
    texts = [str(text)[:CHECK_TEXT_CHARS] for text in rows["text"]]
    features = rows[run.feature_cols].to_numpy(np.float64) if run.feature_cols else None
    inputs = run.preprocessor.encode(texts, features=features)
    probs = {m.id: check_values(_member_probs(tmp, m, inputs)) for m in members}
    return CheckRows(
        texts=texts, probs=probs, features=None if features is None else features.tolist()
    )


def _member_probs(tmp: Path, member: Member, inputs: dict, *, file: Path | None = None):
    """The member's probabilities as the ensemble computes them (from `file`, default its own)."""
    return onnx_probs(file or tmp / member.file, inputs, trims_padding=member.trims_padding)


def _vote_f1(
    tmp: Path, members: list[Member], files: list[Path], weights: list[float], inputs: dict, y_val
) -> float:
    probs = [_member_probs(tmp, m, inputs, file=f) for m, f in zip(members, files)]
    return macro_f1(y_val, vote(probs, voting="soft", weights=weights)[1], probs[0].shape[1])


def _manifest(
    run,
    pool: _Pool,
    choice,
    options,
    members: list[Member],
    fused: Fused | None,
    quantization: QuantizationCheck | None,
    check_rows: CheckRows,
    stacker: Stacker | None,
) -> Manifest:
    weights = [m.weight for m in members]
    stored = [c.val_probs() for c in choice.members]  # of a bagged run: out-of-fold
    n_classes = stored[0].shape[1]
    val_scores = {
        voting: macro_f1(pool.y, vote(stored, voting=voting, weights=w)[1], n_classes)
        for voting, w in {"soft": None, "hard": None, "weighted": weights}.items()
    }
    return Manifest(
        schema_version=SCHEMA_VERSION,
        voxpop_version=__version__,
        created=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        labels=list(run.preprocessor.labels),
        inputs=_input_spec(members, run),
        preprocess="preprocess.json",
        members=members,
        voting=Voting(default=_default_voting(options, stacker), weights=weights),
        selection=Selection(
            method=options.select,
            metric=options.metric,
            size=options.size,
            on=pool.on,
            rows=len(pool.y),
            picks=[members[i].id for i in choice.picks],
            val_scores={k: float(v) for k, v in val_scores.items()},
            cost=_cost_check(choice, members),
        ),
        fused=fused,
        stacker=stacker,
        quantization="int8" if quantization and quantization.kept else "none",
        quantization_check=quantization,
        opset=options.opset,
        parity_tol=options.parity_tol,
        source_run=run.source,
        baseline_train="baseline_train.csv",
        check_rows=check_rows,
        files={},  # filled by write_manifest
    )


def _default_voting(options: ExportOptions, stacker: Stacker | None) -> str:
    if stacker is not None and stack_wins(stacker):
        return "stack"
    return "weighted" if options.select == "greedy" else "soft"


def _input_spec(members: list[Member], run: Run) -> list[InputSpec]:
    names = list(dict.fromkeys(name for m in members for name in m.inputs))
    second_axis = {
        "tokens": "seq",
        "features": run.preprocessor.n_features,
        "grams": "grams",
        "gram_weights": "grams",
        "input_ids": "pieces",
        "attention_mask": "pieces",
    }
    return [
        InputSpec(name=name, dtype=INPUT_DTYPES[name], shape=["batch", second_axis[name]])
        for name in names
    ]
