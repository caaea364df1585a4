"""Map an external set's label words onto a bundle's labels.

Explicit `--label-map` pairs win; every other label is matched to a bundle label by name,
case-insensitively. Rows whose label maps to nothing stay in the count: they are reported (how
many, which labels, which rows) and left out of the metrics only.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxpop.data.errors import VoxpopError
from voxpop.data.io import canonical_label, read_text_file

UNMAPPED = -1
LISTED_UNMAPPED_ROWS = 50


@dataclass(frozen=True)
class LabelMapping:
    """External labels resolved to bundle class indices (UNMAPPED = -1 where none fits)."""

    y_true: np.ndarray  # int64 [n_rows], UNMAPPED for rows left out of the metrics
    mapping: dict[str, str]  # external label -> bundle label, for every label seen that mapped
    unmapped_counts: dict[str, int]  # external label -> rows, for labels that mapped to nothing
    unmapped_rows: list[int]  # 0-based file rows of unmapped labels (first LISTED_UNMAPPED_ROWS)
    absent_classes: list[str]  # bundle labels with no row in the external set

    @property
    def mapped(self) -> np.ndarray:
        """Boolean mask of the rows that take part in the metrics."""
        return self.y_true != UNMAPPED

    def summary(self, n_rows: int) -> dict:
        """JSON-ready account of every row: evaluated, or unmapped and why."""
        return {
            "n_rows": int(n_rows),
            "n_evaluated": int(self.mapped.sum()),
            "n_unmapped": int((~self.mapped).sum()),
            "mapping": dict(sorted(self.mapping.items())),
            "unmapped_labels": dict(sorted(self.unmapped_counts.items())),
            "unmapped_rows": self.unmapped_rows,
            "absent_classes": self.absent_classes,
        }


def parse_label_map(spec: str | None, *, bundle_labels: list[str]) -> dict[str, str]:
    """`--label-map` as {external: bundle label}: a JSON object file, a file of `a=b` lines, or
    an inline `a=b,c=d`. Every target must be one of the bundle's labels."""
    if not spec:
        return {}
    path = Path(spec)
    if path.is_file():
        pairs = _read_map_file(path)
        where = str(path)
    else:
        pairs = _parse_pairs(spec.split(","), where="--label-map")
        where = "--label-map"
    unknown = sorted({target for target in pairs.values() if target not in bundle_labels})
    if unknown:
        raise VoxpopError(
            f"{where}: target label(s) {', '.join(map(repr, unknown))} are not in the bundle "
            f"(bundle labels: {', '.join(bundle_labels)})"
        )
    return pairs


def _read_map_file(path: Path) -> dict[str, str]:
    text = read_text_file(path, what="label map")
    if path.suffix.lower() == ".json":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as err:
            raise VoxpopError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None
        if not isinstance(obj, dict):
            raise VoxpopError(f'{path}: expected a JSON object {{"external": "bundle label"}}')
        return _label_pairs(obj.items(), where=str(path))
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return _parse_pairs(lines, where=str(path))


def _parse_pairs(items: list[str], *, where: str) -> dict[str, str]:
    pairs = []
    for number, item in enumerate(items, start=1):
        source, sep, target = item.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise VoxpopError(
                f"{where}: entry {number} {item.strip()!r} is not of the form external=bundle_label"
            )
        pairs.append((source, target))
    return _label_pairs(pairs, where=where)


def _label_pairs(pairs, *, where: str) -> dict[str, str]:
    """Both sides as the table reader reads labels (`canonical_label`: ` 1.0` is the label `1`)."""
    mapping = {}
    for number, (source, target) in enumerate(pairs, start=1):
        plain = isinstance(target, str | int | float)
        source, target = canonical_label(source), canonical_label(target) if plain else None
        if not source or not target:
            raise VoxpopError(
                f"{where}: entry {number} needs an external label and a bundle "
                "label (a string or a number)"
            )
        mapping[source] = target
    return mapping


def map_labels(
    external: np.ndarray,
    bundle_labels: list[str],
    *,
    label_map: dict[str, str] | None = None,
    rows: np.ndarray | None = None,
) -> LabelMapping:
    """Resolve each row's external label: explicit map first, then the bundle label of the same
    name ignoring case; anything else is UNMAPPED and reported. `rows` are the file's row numbers
    (default 0..n-1), used to list the unmapped rows."""
    by_folded_name = {label.casefold(): index for index, label in enumerate(bundle_labels)}
    explicit = {
        source.casefold(): bundle_labels.index(target)
        for source, target in (label_map or {}).items()
    }
    lookup = {**by_folded_name, **explicit}
    distinct, inverse = np.unique(np.asarray(external, dtype=str), return_inverse=True)
    resolved = np.array([lookup.get(label.casefold(), UNMAPPED) for label in distinct], np.int64)
    y_true = resolved[inverse]
    counts = Counter(inverse.tolist())
    return LabelMapping(
        y_true=y_true,
        mapping={
            label: bundle_labels[index]
            for label, index in zip(distinct.tolist(), resolved.tolist())
            if index != UNMAPPED
        },
        unmapped_counts={
            label: counts[position]
            for position, (label, index) in enumerate(zip(distinct.tolist(), resolved.tolist()))
            if index == UNMAPPED
        },
        unmapped_rows=np.asarray(rows if rows is not None else np.arange(len(y_true)))[
            y_true == UNMAPPED
        ][:LISTED_UNMAPPED_ROWS].tolist(),
        absent_classes=[
            label for index, label in enumerate(bundle_labels) if not (y_true == index).any()
        ],
    )
