"""`distill_bundle`: one fast student trained on an ensemble bundle's soft probabilities, exported
as a normal bundle with the same proofs (as AutoGluon's `distill`).

The teacher (the bundle's weighted vote) labels the training texts and any unlabelled texts with
its probabilities; the student, a linear n-gram model (`STUDENT_FAMILIES`), is fitted to them in
closed form (`voxpop.models.training.fit_distilled`) on the bundle's own preprocessor, so it reads
the inputs the teacher was trained on. Student and teacher are scored on validation rows never
distilled on: the `val` table, else a stratified fifth held out of `data`. The default family is
chosen among the students alone: the teacher's score is optimistic wherever it was tuned on those
rows (as when `data` is its own training split and there is no `val`). The student is written as
a one-checkpoint run directory and exported by `export_bundle`: converted, proven against Keras,
check rows, manifest, everything a tuned member gets.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxpop.data.errors import VoxpopError
from voxpop.export.options import STUDENT_FAMILIES

VAL_SIZE = 0.2
# The default student is the fastest family whose val macro-F1 is within this of the best student's.
MAX_F1_GAP = 0.01


@dataclass(frozen=True)
class Distilled:
    """What `distill_bundle` made: the student bundle and both scores on the held-out rows."""

    bundle: Path
    family: str
    val_rows: int
    distilled_rows: int
    student_val_macro_f1: float
    teacher_val_macro_f1: float
    candidates: dict[str, float]  # family -> its val macro-F1, for every family tried


def distill_bundle(
    teacher_dir,
    out,
    *,
    data,
    unlabelled=(),
    val=None,
    text_col: str = "text",
    label_col: str = "label",
    table_format: str | None = None,
    family: str | None = None,
    C: float = 4.0,
    force: bool = False,
    seed: int = 0,
    on_step: Callable[[str], None] | None = None,
) -> Distilled:
    """Distil the bundle at `teacher_dir` into a one-member bundle at `out`.

    data: a labelled table (CSV, TSV, Parquet, JSON Lines; with the bundle's feature columns if
    it reads any); `unlabelled`: tables of texts distilled on too; `val`: a labelled table to
    score on (default: a stratified fifth held out of `data`). `family`: one of STUDENT_FAMILIES,
    default the fastest within MAX_F1_GAP of the best student's val macro-F1. `on_step(what)` is
    told each long step as it starts (the teacher's labelling, each fit, the export). VoxpopError
    for an unknown family, a bad table, labels the bundle does not have, or `out` existing
    without `force`.
    """
    step = on_step or (lambda what: None)
    from voxpop.data import read_table
    from voxpop.data.split import Split, split_rows
    from voxpop.ensemble import Ensemble
    from voxpop.ensemble.metrics import macro_f1
    from voxpop.export.bundle import export_bundle

    if family is not None and family not in STUDENT_FAMILIES:
        raise VoxpopError(
            f"--family: {family!r} cannot be distilled into (choose from "
            f"{', '.join(STUDENT_FAMILIES)})"
        )
    out = Path(out)
    if out.exists() and not force:
        raise VoxpopError(f"{out}: already exists (use --force to replace it)")
    teacher = Ensemble.load(teacher_dir, device="cpu")
    pre = teacher.preprocessor
    if not pre.n_buckets:
        raise VoxpopError(
            f"{teacher_dir}: its preprocessor makes no n-grams, which every "
            f"student family ({', '.join(STUDENT_FAMILIES)}) reads"
        )
    columns = tuple(pre.user_feature_names)
    tables = [
        read_table(
            path,
            text_col=text_col,
            label_col=label_col,
            feature_cols=columns,
            format=table_format,
            require_classes=2,
        )
        for path in (data, *([] if val is None else [val]))
    ]
    extra = [
        read_table(path, text_col=text_col, feature_cols=columns, format=table_format)
        for path in unlabelled
    ]
    # The labelled rows, --data's then --val's, split into distilled-on (train) and scored (val).
    texts = [text for table in tables for text in table.texts]
    labels = np.concatenate([np.asarray(table.labels).astype(str) for table in tables])
    features = None if not columns else np.vstack([table.features for table in tables])
    y = pre.encode_labels(labels)
    if val is None:
        split = split_rows(labels, val_size=VAL_SIZE, test_size=0.0, seed=seed)
    else:
        n_data = len(tables[0])
        split = Split(train=np.arange(n_data), val=np.arange(n_data, len(texts)), test=np.arange(0))
    train_texts = [texts[i] for i in split.train] + [t for part in extra for t in part.texts]
    train_features = (
        None
        if features is None
        else np.vstack([features[split.train], *[part.features for part in extra]])
    )
    val_texts = [texts[i] for i in split.val]
    val_features = None if features is None else features[split.val]
    voting = teacher.manifest.voting.default  # what `voxpop predict` gives
    step(f"the teacher's {voting} vote on {len(train_texts) + len(split.val):,} texts")
    soft = teacher.predict(train_texts, features=train_features, voting=voting).probs
    teacher_val = teacher.predict(val_texts, features=val_features, voting=voting)
    teacher.close()
    n_classes = len(pre.labels)
    teacher_f1 = macro_f1(y[split.val], teacher_val.label_ids, n_classes)
    train = pre.encode(train_texts, train_features)
    val_inputs = pre.encode(val_texts, val_features)

    fitted = {}
    for name in _candidates(family, pre, teacher_dir):
        step(f"fitting student {name} on {len(train_texts):,} texts")
        fitted[name] = _fit_student(
            name, pre, train=train, soft=soft, val=val_inputs, y_val=y[split.val], C=C, seed=seed
        )
    scores = {name: result[2]["val_macro_f1"] for name, result in fitted.items()}
    best = max(scores.values())
    chosen = next(name for name in fitted if scores[name] >= best - MAX_F1_GAP)
    model, config, metrics, val_probs = fitted[chosen]
    with tempfile.TemporaryDirectory(prefix="voxpop-distill-") as tmp:
        run_dir = Path(tmp) / "distilled"
        _write_student_run(
            run_dir,
            pre,
            texts=texts,
            labels=labels,
            features=features,
            split=split,
            model=model,
            family=chosen,
            config=config,
            metrics=metrics,
            val_probs=val_probs,
        )
        step(f"exporting student {chosen} with export's proofs")
        export_bundle(run_dir, out, size=1, select="top", fuse=False, force=force)
    return Distilled(
        bundle=out,
        family=chosen,
        val_rows=len(split.val),
        distilled_rows=len(train_texts),
        student_val_macro_f1=scores[chosen],
        teacher_val_macro_f1=float(teacher_f1),
        candidates=scores,
    )


def _candidates(family: str | None, pre, teacher_dir) -> list[str]:
    """The student families to fit, fastest first: tfidf_fusion only where the preprocessor
    makes features (engineered or the user's)."""
    fits = [name for name in STUDENT_FAMILIES if name != "tfidf_fusion" or pre.n_features]
    if family is not None and family not in fits:
        raise VoxpopError(
            f"--family {family}: {teacher_dir}'s preprocessor makes no features "
            "for it to read (choose tfidf)"
        )
    return [family] if family else fits


def _fit_student(family: str, pre, *, train, soft, val, y_val, C: float, seed: int):
    """(model, config, val metrics, val probabilities) of one student family fitted to `soft`."""
    from voxpop.models import build
    from voxpop.models.runtime import configure
    from voxpop.models.training import fit_distilled

    configure(seed=seed)
    config = {"C": C, "seed": seed}
    model = build(
        family,
        config,
        n_tokens=pre.n_tokens,
        n_classes=len(pre.labels),
        n_features=pre.n_features,
        n_buckets=pre.n_buckets,
    )
    result = fit_distilled(
        model, train=train, soft_targets=soft, val=val, y_val=y_val, config=config
    )
    val_probs = np.asarray(
        model.predict({t.name: val[t.name] for t in model.inputs}, batch_size=512, verbose=0)
    )
    return model, config, result.best_metrics, val_probs


def _write_student_run(
    run_dir: Path, pre, *, texts, labels, features, split, model, family, config, metrics, val_probs
) -> None:
    """A run directory as `voxpop tune` writes it, with the student as its one checkpoint: the
    labelled rows (train and val as split), the teacher's preprocessor unchanged."""
    from voxpop.data.rundir import TrialData, add_checkpoint, data_rows, write_prepared

    run_dir.mkdir(parents=True)
    splits = np.empty(len(texts), dtype=object)
    splits[split.train], splits[split.val] = "train", "val"
    rows = data_rows(
        ids=np.arange(len(texts)).astype(str),
        texts=list(texts),
        labels=np.asarray(labels).astype(str),
        splits=splits,
        features=None if features is None else np.asarray(features),
        feature_cols=tuple(pre.user_feature_names),
    )
    write_prepared(
        run_dir,
        preprocessor=pre,
        rows=rows,
        data=TrialData.encode(pre, rows),
        job={"command": "voxpop distill", "family": family},
    )
    add_checkpoint(
        run_dir,
        trial_id=f"student_{family}",
        index=0,
        model=model,
        val_probs=val_probs,
        metrics={"family": family, "config": config, "node_id": "local", **metrics},
    )
