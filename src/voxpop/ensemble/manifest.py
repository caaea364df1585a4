"""The bundle manifest (`BUNDLE/ensemble.json`) as typed, validated records.

Export builds a `Manifest` and `bundle.write_manifest` serialises it; `bundle.open_bundle` parses
it back with the same records, so writer and readers cannot drift. Every reader (the Ensemble,
`voxpop info`, predict, evaluate, the export report) asks these records, never the JSON dict.
A manifest may come from someone else: every field is typed and bounded, and cross-field rules
(one weight per member, picks among the members, check rows of the right shape) are checked at
load, each failure one VoxpopError naming the file and field.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Annotated, Literal

import numpy as np
from pydantic import AfterValidator, Field, JsonValue, StringConstraints, model_validator

from voxpop.data import INPUT_DTYPES
from voxpop.data.preprocess import MAX_LABELS
from voxpop.data.records import (
    FiniteFloat,
    Name,
    NonNegative,
    Probability,
    Record,
    Text,
    quoted,
)

# 2: typed records, check rows; bundles of schema 1 must be exported again.
SCHEMA_VERSION = 2
MAX_MEMBERS = 64
MAX_FILES = 1000
# Export stores up to CHECK_ROWS validation rows (texts cut to CHECK_TEXT_CHARS characters) with
# each member's probabilities on them, CHECK_VALUES numbers at most (fewer rows for many labels).
CHECK_ROWS = 32
CHECK_TEXT_CHARS = 2000
CHECK_VALUES = 200_000
VOTINGS = ("soft", "hard", "weighted", "stack")
# The fused graph's second output, beside `probs`, when the bundle has a stacker.
STACK_OUTPUT = "stack_probs"
# Prefix of the fused graph's outputs that give each member's probabilities (`member_output`).
MEMBER_OUTPUT_PREFIX = "member_probs/"


def member_output(member_id: str) -> str:
    """The fused graph's output that gives member `member_id`'s probabilities."""
    return MEMBER_OUTPUT_PREFIX + member_id


_PATH_CHARACTERS = re.compile(r"[A-Za-z0-9_.+@=/-]+")


def _bundle_path(relative: str) -> str:
    """A file path inside the bundle: relative, POSIX, normalised, of plain characters."""
    pure = PurePosixPath(relative)
    if pure.is_absolute() or ".." in pure.parts or "\\" in relative:
        raise ValueError(f"file path {quoted(relative)} points outside the bundle")
    if (
        not _PATH_CHARACTERS.fullmatch(relative)
        or pure.as_posix() != relative
        or "." in relative.split("/")
    ):
        raise ValueError(
            f"file path {quoted(relative)} is not a plain relative path (letters, "
            "digits, _.+@=- and /)"
        )
    return relative


# Ids, families and method names: printable ASCII without spaces, as voxpop writes them.
Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:@+/=-]{0,199}$")]
BundlePath = Annotated[
    str, StringConstraints(min_length=1, max_length=500), AfterValidator(_bundle_path)
]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Count = Annotated[int, Field(ge=0, le=2**53)]
Weights = Annotated[list[NonNegative], Field(min_length=1, max_length=MAX_MEMBERS)]


def _input_name(name: str) -> str:
    if name not in INPUT_DTYPES:
        raise ValueError(
            f"unknown model input {quoted(name)} (voxpop makes {', '.join(INPUT_DTYPES)})"
        )
    return name


InputName = Annotated[str, AfterValidator(_input_name)]


class Parity(Record):
    """How closely the member's ONNX graph reproduced Keras on validation rows at export."""

    max_abs_diff: NonNegative
    argmax_agreement: Probability
    rows: Count


class GraphOps(Record):
    """Recurrent ops in the member's graph (a recurrent member must have no Loop)."""

    lstm: Count = 0
    gru: Count = 0
    loop: Count = 0


class ValMetrics(Record):
    """The checkpoint's validation metrics (those its metrics.json holds)."""

    val_macro_f1: FiniteFloat | None = None
    val_accuracy: FiniteFloat | None = None
    val_loss: FiniteFloat | None = None


class InputSpec(Record):
    """One graph input: name, dtype and shape (`batch`, then `seq`, `grams` or a width)."""

    name: InputName
    dtype: str
    shape: Annotated[list[Identifier | Count], Field(min_length=1, max_length=4)]

    @model_validator(mode="after")
    def _dtype(self) -> InputSpec:
        if self.dtype != INPUT_DTYPES[self.name]:
            raise ValueError(
                f"input {self.name} has dtype {INPUT_DTYPES[self.name]}, not {quoted(self.dtype)}"
            )
        return self


class BagRecord(Record):
    """A bagged member (a run tuned with `voxpop tune --folds K`): one configuration trained on K
    folds, its graph the K fold models side by side and `probs` their mean. The member's
    `val_metrics` are then its out-of-fold scores (every train and val row, each by the fold
    model that did not train on it)."""

    config_id: Identifier
    folds: Annotated[int, Field(ge=2, le=100)]
    # each fold's checkpoint (run-relative trial/checkpoint), in fold order
    checkpoints: Annotated[list[Name], Field(min_length=2, max_length=100)]

    @model_validator(mode="after")
    def _one_per_fold(self) -> BagRecord:
        if len(self.checkpoints) != self.folds:
            raise ValueError(
                f"bag {self.config_id}: {len(self.checkpoints)} checkpoints for {self.folds} folds"
            )
        return self


class Member(Record):
    """One ONNX member: its file, where it came from, its vote weight and its conversion proof."""

    id: Identifier
    file: BundlePath
    family: Identifier
    config: Annotated[dict[Name, JsonValue], Field(max_length=1000)] = {}
    trial_id: Identifier | None = None
    checkpoint: Name | None = None
    epoch: Count | None = None
    inputs: Annotated[list[InputName], Field(min_length=1, max_length=len(INPUT_DTYPES))]
    val_metrics: ValMetrics = ValMetrics()
    weight: NonNegative
    parity: Parity
    graph: GraphOps | None = None
    # Its graph reads `tokens` cut to the batch's longest row (voxpop.export.optimize; its family
    # does not depend on padding): the ensemble runs such graphs on rows sorted by length.
    trims_padding: bool = False
    # Set when the member is a bag of fold models (its parity: against their Keras mean).
    bag: BagRecord | None = None

    @property
    def kind(self) -> str:
        """Its family, and for a bag its fold count (`cnn`, `cnn, bag of 5`): how reports name it."""
        return self.family if self.bag is None else f"{self.family}, bag of {self.bag.folds}"


class Voting(Record):
    """The vote `voxpop predict` uses by default, and the weights of the weighted vote."""

    default: Literal["soft", "hard", "weighted", "stack"]
    weights: Weights


class CostCheck(Record):
    """`--max-ms-per-row`: the budget, and the measured milliseconds per row (ONNX Runtime on one
    thread, on `rows` validation texts, before any quantization) of the kept members' graphs
    and of encoding their inputs once for all of them; `total_ms` is what the budget bounds."""

    max_ms_per_row: NonNegative
    rows: Count
    encode_ms: NonNegative
    members_ms: Annotated[dict[Identifier, NonNegative], Field(max_length=MAX_MEMBERS)]
    total_ms: NonNegative


class Selection(Record):
    """How export chose the members: on the validation rows, or for a bagged run on the
    out-of-fold rows (`on`; `rows` of them). `val_scores` are the votes' macro-F1 on those rows
    (the members' stored probabilities)."""

    method: Identifier
    metric: Identifier
    size: Annotated[int, Field(ge=1, le=MAX_MEMBERS)] | None = None
    on: Literal["validation", "out_of_fold"] = "validation"
    rows: Count | None = None
    picks: Annotated[list[Identifier], Field(max_length=10_000)] = []
    val_scores: dict[Literal["soft", "hard", "weighted"], FiniteFloat] = {}
    cost: CostCheck | None = None


class Fused(Record):
    """fused.onnx: every member and the weighted soft vote (these weights) in one graph."""

    file: BundlePath
    weights: Weights
    max_abs_diff: NonNegative | None = None
    # Set when the graph also outputs STACK_OUTPUT, the stacker's probabilities: its largest
    # difference from the stacker applied with numpy at export.
    stack_max_abs_diff: NonNegative | None = None
    # Set when the graph also outputs each member's probabilities (`member_output`), so that
    # every vote and every member comes from one run: their largest difference from the member
    # graphs at export.
    member_max_abs_diff: NonNegative | None = None


class Stacker(Record):
    """A multinomial logistic regression over the members' log-probabilities (`voxpop export
    --combine stack`), stored as numbers so that predicting needs numpy only:
    probs = softmax(x @ coef.T + intercept), x = the members' log(max(p, clip)) side by side
    (member order, then label order). `cv_macro_f1` scores it and the weighted vote on the same
    cross-validated held-out rows (`folds` folds of `rows` rows of `fit_on`)."""

    fit_on: Literal["validation", "out_of_fold"]
    rows: Count
    folds: Annotated[int, Field(ge=2, le=100)]
    C: Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
    clip: Annotated[float, Field(gt=0.0, lt=1.0)]
    coef: Annotated[
        list[Annotated[list[FiniteFloat], Field(max_length=MAX_MEMBERS * MAX_LABELS)]],
        Field(min_length=2, max_length=MAX_LABELS),
    ]
    intercept: Annotated[list[FiniteFloat], Field(min_length=2, max_length=MAX_LABELS)]
    cv_macro_f1: dict[Literal["stack", "weighted"], FiniteFloat]


class QuantizationCheck(Record):
    """Export's dynamic int8 trial: the vote's val macro-F1 and the bytes, fp32 against int8 (the
    members where int8 pays quantized, the others fp32)."""

    requested: Literal["int8"]
    kept: bool
    val_macro_f1: dict[Literal["fp32", "int8"], FiniteFloat]
    bytes: dict[Literal["fp32", "int8"], Count]
    max_f1_drop: FiniteFloat
    # The members int8 is offered for (voxpop.export.quantize.int8_pays); the others stay fp32.
    members: list[str] = []


def check_values(probs) -> list[list[float]]:
    """Probabilities as the check rows store them: 9 significant digits, float32's precision.
    Not fixed decimals: a stacker reads log(p), and 1.4e-7 rounded to 1e-7 moved a confident
    member's stack output by 0.016 on the check rows, which loading then refused."""
    return [[float(f"{value:.9g}") for value in row] for row in np.asarray(probs, np.float32)]


class CheckRows(Record):
    """Validation rows stored by export with each member's probabilities on them. Loading runs
    every graph it opens on these texts and compares (the fused graph with the weighted vote of
    the stored member probabilities), so a graph, a vocabulary or a weight changed after export
    is refused even where the checksums were rewritten to match."""

    texts: Annotated[
        list[Annotated[Text, Field(max_length=CHECK_TEXT_CHARS)]],
        Field(min_length=1, max_length=CHECK_ROWS),
    ]
    features: list[Annotated[list[FiniteFloat], Field(max_length=10_000)]] | None = None
    probs: Annotated[dict[Identifier, list[list[Probability]]], Field(max_length=MAX_MEMBERS)]


class Manifest(Record):
    """`BUNDLE/ensemble.json` (docs/ARCHITECTURE.md, "The bundle manifest")."""

    schema_version: Literal[2]
    voxpop_version: Name
    created: Name
    labels: Annotated[list[Name], Field(min_length=2, max_length=MAX_LABELS)]
    inputs: Annotated[list[InputSpec], Field(min_length=1, max_length=len(INPUT_DTYPES))]
    preprocess: BundlePath
    members: Annotated[list[Member], Field(min_length=1, max_length=MAX_MEMBERS)]
    voting: Voting
    selection: Selection
    fused: Fused | None = None
    stacker: Stacker | None = None
    quantization: Literal["none", "int8"] = "none"
    quantization_check: QuantizationCheck | None = None
    opset: Annotated[int, Field(ge=1, le=100)] | None = None
    parity_tol: NonNegative | None = None
    source_run: Annotated[Text, Field(max_length=10_000)] | None = None
    baseline_train: BundlePath | None = None
    check_rows: CheckRows
    files: Annotated[dict[BundlePath, Sha256], Field(max_length=MAX_FILES)]

    @property
    def member_ids(self) -> list[str]:
        return [member.id for member in self.members]

    def member(self, member_id: str) -> Member:
        return next(m for m in self.members if m.id == member_id)

    def used_files(self) -> list[str]:
        """Every file the bundle's readers open (the bundle reader checks each is in `files`)."""
        used = [self.preprocess] + [member.file for member in self.members]
        used += [self.fused.file] if self.fused else []
        used += [self.baseline_train] if self.baseline_train else []
        return used

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        ids = self.member_ids
        for name, values in (
            ("members: id", ids),
            ("members: file", [m.file for m in self.members]),
            ("labels", self.labels),
            ("inputs: name", [i.name for i in self.inputs]),
        ):
            if len(set(values)) != len(values):
                raise ValueError(f"{name}: an entry appears twice")
        _check_weights("voting.weights", self.voting.weights, len(ids))
        if self.fused:
            _check_weights("fused.weights", self.fused.weights, len(ids))
        cost = self.selection.cost
        if cost is not None and sorted(cost.members_ms) != sorted(ids):
            raise ValueError("selection.cost.members_ms: must hold one cost per member id")
        unknown = sorted(set(self.selection.picks) - set(ids))
        if unknown:
            raise ValueError(f"selection.picks: {quoted(unknown[0])} is not a member id")
        made = {spec.name for spec in self.inputs}
        for member in self.members:
            if not set(member.inputs) <= made:
                raise ValueError(
                    f"members: {member.id} reads inputs the manifest's `inputs` do not list"
                )
        self._check_rows_shape()
        self._check_stacker()
        return self

    def _check_stacker(self) -> None:
        n_labels, stacker = len(self.labels), self.stacker
        if stacker is None:
            if self.voting.default == "stack":
                raise ValueError("voting.default: stack needs a stacker")
            if self.fused and self.fused.stack_max_abs_diff is not None:
                raise ValueError("fused.stack_max_abs_diff: set without a stacker")
            return
        width = n_labels * len(self.members)
        if (
            len(stacker.coef) != n_labels
            or any(len(row) != width for row in stacker.coef)
            or len(stacker.intercept) != n_labels
        ):
            raise ValueError(
                f"stacker: coef must be {n_labels} rows of {width} numbers (one per "
                f"member and label) and intercept {n_labels} numbers"
            )

    def _check_rows_shape(self) -> None:
        rows, width = len(self.check_rows.texts), len(self.labels)
        if sorted(self.check_rows.probs) != sorted(self.member_ids):
            raise ValueError("check_rows.probs: must hold one table per member id")
        for member_id, table in self.check_rows.probs.items():
            if len(table) != rows or any(len(row) != width for row in table):
                raise ValueError(
                    f"check_rows.probs.{member_id}: must be {rows} rows of {width} "
                    "probabilities (one per check text, one per label)"
                )
        features = self.check_rows.features
        if features is not None and (
            len(features) != rows or len({len(row) for row in features}) > 1
        ):
            raise ValueError(f"check_rows.features: must be {rows} rows of equal width")


def _check_weights(name: str, weights: list[float], n_members: int) -> None:
    if len(weights) != n_members:
        raise ValueError(f"{name}: {len(weights)} weights for {n_members} members")
    if not sum(weights) > 0:
        raise ValueError(f"{name}: the weights sum to 0")
