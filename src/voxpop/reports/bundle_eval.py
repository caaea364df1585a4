"""The thin layer between a bundle and the array-based report: run the Ensemble on a labelled
table, fit the baselines, and hand everything to `build_report`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxpop.data.errors import VoxpopError
from voxpop.data.options import LABEL_COL, TEXT_COL
from voxpop.reports.baselines import fit_tfidf, majority_baseline, tfidf_output
from voxpop.reports.evaluation import HARDEST, ModelOutput, build_report
from voxpop.reports.labels import map_labels

OOV_ID, PAD_ID = 1, 0
CHUNK_ROWS = 2048


@dataclass(frozen=True)
class Baselines:
    """Baselines fitted once on a training table, scored on any number of inputs."""

    y_train: np.ndarray  # class ids of the training rows (the majority baseline's priors)
    tfidf: object  # fitted scikit-learn pipeline
    source: str

    def outputs(self, texts: list[str], *, n_classes: int) -> dict[str, ModelOutput]:
        """Each baseline's answers on `texts`."""
        return {
            "majority": majority_baseline(self.y_train, n_rows=len(texts), n_classes=n_classes),
            "tfidf_logreg": tfidf_output(self.tfidf, texts, n_classes=n_classes),
        }


def load_ensemble(bundle: str | Path, *, trust: str | Path | None = None):
    """The bundle's Ensemble for `predict_votes`, which needs each member's probabilities: from
    one run of the fused graph where it outputs them (bundles exported since it does), else from
    the members' own sessions; `trust`: a public key that must have signed it."""
    from voxpop.ensemble import Ensemble

    return Ensemble.load(bundle, fused=True, trust=trust)


def resolve_baselines(
    ensemble,
    override: str | Path | None,
    *,
    text_col: str = TEXT_COL,
    label_col: str = LABEL_COL,
    format: str | None = None,
) -> Baselines | None:
    """Baselines fitted on `override` (a user's table, read with the given column names and
    `format`), else on the bundle's recorded `baseline_train.csv` (columns text,label); None when
    neither."""
    if override is not None:
        return fit_baselines(
            Path(override),
            labels=list(ensemble.labels),
            text_col=text_col,
            label_col=label_col,
            format=format,
        )
    relative = ensemble.manifest.baseline_train
    if relative is None:
        return None
    return fit_baselines(Path(ensemble.bundle) / relative, labels=list(ensemble.labels))


def fit_baselines(
    path: Path,
    *,
    labels: list[str],
    text_col: str = TEXT_COL,
    label_col: str = LABEL_COL,
    format: str | None = None,
) -> Baselines:
    """Fit the baselines on a training table whose labels are the bundle's (ignoring case)."""
    from voxpop.data import read_table

    table = read_table(path, text_col=text_col, label_col=label_col, format=format)
    mapping = map_labels(table.labels, labels, rows=table.rows)
    if mapping.unmapped_counts:
        raise VoxpopError(
            f"{path}: label(s) {', '.join(map(repr, mapping.unmapped_counts))} in column "
            f"'{label_col}' are not bundle labels ({', '.join(labels)}), first at row "
            f"{mapping.unmapped_rows[0]}"
        )
    return Baselines(
        y_train=mapping.y_true, tfidf=fit_tfidf(list(table.texts), mapping.y_true), source=str(path)
    )


def oov_rates(tokens: np.ndarray) -> np.ndarray:
    """Share of each text's (non-padding) tokens that the vocabulary does not know."""
    real = (tokens != PAD_ID).sum(axis=1)
    return np.divide(
        (tokens == OOV_ID).sum(axis=1), real, out=np.zeros(len(tokens)), where=real > 0
    )


def predict_all(
    ensemble,
    texts: list[str],
    *,
    votings: list[str],
    features: np.ndarray | None = None,
    on_rows: Callable[[int], None] | None = None,
) -> tuple[dict, dict, np.ndarray]:
    """Vote outputs per rule, member outputs per id, and OOV rates (None when no member reads
    tokens), in chunks (progress per chunk). `features`: the rows' user feature columns, for a
    bundle tuned with them.

    `ensemble`: as `load_ensemble` gives it.
    """
    vote_parts = {rule: [] for rule in votings}
    member_parts = {member_id: [] for member_id in ensemble.member_ids}
    oov_parts = []
    for start in range(0, len(texts), CHUNK_ROWS):
        chunk = texts[start : start + CHUNK_ROWS]
        inputs = ensemble.encode(
            chunk, None if features is None else features[start : start + CHUNK_ROWS]
        )
        if "tokens" in inputs:  # members that read only n-grams have no vocabulary to miss
            oov_parts.append(oov_rates(inputs["tokens"]))
        for rule, prediction in ensemble.predict_votes(inputs, votings=votings).items():
            vote_parts[rule].append((prediction.probs, prediction.label_ids))
        for member_id, probs in prediction.member_probs.items():
            member_parts[member_id].append(probs)
        if on_rows:
            on_rows(len(chunk))
    votes = {
        rule: ModelOutput(
            probs=np.concatenate([p for p, _ in parts]),
            pred=np.concatenate([ids for _, ids in parts]),
        )
        for rule, parts in vote_parts.items()
    }
    members = {
        member_id: ModelOutput(probs=np.concatenate(parts))
        for member_id, parts in member_parts.items()
    }
    return votes, members, np.concatenate(oov_parts) if oov_parts else None


def vote_without_each_member(
    ensemble, members: dict[str, ModelOutput], *, voting: str
) -> dict[str, ModelOutput]:
    """The vote `voting` with each member left out in turn: member id -> that vote's outputs
    (empty for a one-member bundle, and for the stacker, which reads every member)."""
    if len(members) < 2 or voting == "stack":
        return {}
    result = {}
    for left_out in members:
        probs, label_ids = ensemble.vote_of(
            {m: output.probs for m, output in members.items() if m != left_out}, voting=voting
        )
        result[left_out] = ModelOutput(probs=probs, pred=label_ids)
    return result


def evaluate_table(
    ensemble,
    table,
    *,
    votings: list[str],
    label_map: dict[str, str] | None = None,
    baselines: Baselines | None = None,
    hardest: int = HARDEST,
    primary: str | None = None,
    on_rows: Callable[[int], None] | None = None,
    predict: Callable = predict_all,
) -> dict:
    """The report dict for one labelled table (`voxpop.data.Table` with labels).

    Rows whose label maps onto no bundle label are counted and listed in `report["data"]` and
    left out of the metrics. Without `baselines`, the majority class is taken from the
    evaluated rows themselves and there is no TF-IDF baseline.
    `primary` (default the first of `votings`) is the vote whose hardest examples are listed.
    `predict`: computes the outputs, with `predict_all`'s signature (`voxpop evaluate --address`
    passes `voxpop.batch.raydata.predict_all`).
    """
    labels = list(ensemble.labels)
    mapping = map_labels(table.labels, labels, label_map=label_map, rows=table.rows)
    keep = mapping.mapped
    if not keep.any():
        raise VoxpopError(
            f"{table.source}: no label maps onto the bundle's labels (found "
            f"{', '.join(map(repr, list(mapping.unmapped_counts)[:10]))}; bundle labels: "
            f"{', '.join(labels)}); map them with --label-map external=bundle_label,..."
        )
    y_true = mapping.y_true[keep]
    texts = [text for text, kept in zip(table.texts, keep) if kept]
    features = None if table.features is None else table.features[keep]
    votes, members, oov = predict(
        ensemble, texts, votings=votings, features=features, on_rows=on_rows
    )
    primary = primary or votings[0]
    if baselines is not None:
        baseline_outputs = baselines.outputs(texts, n_classes=len(labels))
    else:
        baseline_outputs = {
            "majority": majority_baseline(y_true, n_rows=len(y_true), n_classes=len(labels))
        }
    data = {
        "source": table.source,
        "bundle": str(ensemble.bundle),
        **mapping.summary(len(table)),
        "n_empty_texts": table.report.n_empty_texts,
        "n_replaced_bytes": table.report.n_replaced_bytes,
        "baseline_train": baselines.source if baselines else None,
        "majority_fit_on": "baseline_train" if baselines else "evaluated rows",
        "member_families": {m.id: m.kind for m in ensemble.manifest.members},
    }
    return build_report(
        y_true=y_true,
        labels=labels,
        votes=votes,
        members=members,
        baselines=baseline_outputs,
        texts=texts,
        ids=[str(i) for i in np.asarray(table.ids)[keep]],
        primary=primary,
        oov_rates=oov,
        hardest=hardest,
        data=data,
        without_member=vote_without_each_member(ensemble, members, voting=primary),
    )
