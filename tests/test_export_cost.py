"""Cost-aware selection (--max-ms-per-row): costs measured with real ONNX Runtime sessions on real
tweets, and every selection method kept within a budget (costs given as numbers, so that which
member is too dear does not depend on the machine's load)."""

from __future__ import annotations

import numpy as np
import pytest

from bundle_factory import member_model, tweet_preprocessor, tweet_rows  # noqa: F401 (fixtures)
from test_export_select import Y, checkpoints  # noqa: F401 (fixture)
from voxpop.data.errors import VoxpopError
from voxpop.export.cost import Budget, Costs, measure_costs
from voxpop.export.select import select_members

A, B, C, D = (
    f"{trial}/checkpoint_00000{epoch}" for trial, epoch in (("a", 1), ("b", 0), ("c", 0), ("d", 0))
)


def costs(graph_ms: dict[str, float], encode_ms: float = 0.1) -> Costs:
    """Given costs: every candidate reads tokens, encoded once for all at `encode_ms`."""
    return Costs(
        graph_ms=graph_ms,
        inputs={name: frozenset({"tokens"}) for name in graph_ms},
        rows=100,
        _encode=lambda inputs: encode_ms,
    )


@pytest.mark.parametrize("method", ["top", "greedy", "diverse"])
def test_every_method_keeps_within_the_budget(checkpoints, method):  # noqa: F811
    measured = costs({A: 5.0, B: 0.2, C: 0.3, D: 0.4})
    unlimited = select_members(checkpoints, Y, method=method, size=3, metric="val_macro_f1")
    assert A in [c.name for c in unlimited.members]  # the best member, without a budget
    budget = Budget(1.0, measured)
    choice = select_members(
        checkpoints, Y, method=method, size=3, metric="val_macro_f1", budget=budget
    )
    names = [c.name for c in choice.members]
    assert A not in names and names
    assert measured.of(names) <= 1.0
    assert "over --max-ms-per-row 1" in choice.reasons[A]
    assert choice.budget is budget


def test_greedy_under_a_budget_that_fits_everything_is_greedy(checkpoints):  # noqa: F811
    plain = select_members(checkpoints, Y, method="greedy", size=3, metric="val_macro_f1")
    budgeted = select_members(
        checkpoints,
        Y,
        method="greedy",
        size=3,
        metric="val_macro_f1",
        budget=Budget(100.0, costs({A: 1.0, B: 1.0, C: 1.0, D: 1.0})),
    )
    assert [c.name for c in budgeted.members] == [c.name for c in plain.members]
    assert budgeted.weights == plain.weights


def test_the_encoding_is_counted_once_and_a_tight_budget_keeps_one_member(checkpoints):  # noqa: F811
    measured = costs({A: 0.5, B: 0.5, C: 0.5, D: 0.5}, encode_ms=0.4)
    assert measured.of([A, B]) == pytest.approx(0.4 + 0.5 + 0.5)
    choice = select_members(
        checkpoints, Y, method="greedy", size=3, metric="val_macro_f1", budget=Budget(1.0, measured)
    )
    assert [c.name for c in choice.members] == [A]


def test_no_candidate_fits_is_a_user_error_naming_the_cheapest(checkpoints):  # noqa: F811
    with pytest.raises(
        VoxpopError,
        match=r"--max-ms-per-row 0.05: no candidate fits; the "
        rf"cheapest, {B}, costs 0.300 ms per row",
    ):
        select_members(
            checkpoints,
            Y,
            method="greedy",
            size=3,
            metric="val_macro_f1",
            budget=Budget(0.05, costs({A: 5.0, B: 0.2, C: 0.3, D: 0.4})),
        )


def test_measured_costs_are_real_onnx_runtime_timings(tweet_preprocessor, tweet_rows):  # noqa: F811
    shape = {
        "n_tokens": tweet_preprocessor.n_tokens,
        "n_classes": 3,
        "n_features": tweet_preprocessor.n_features,
    }
    models = {
        "mean": member_model(**shape, seed=0, use_features=False),
        "lstm": member_model(**shape, seed=1, use_features=False, encoder="lstm", dim=64),
        "features": member_model(**shape, seed=2, use_features=True),
    }
    texts = tweet_rows["text"].astype(str).tolist()[:300]
    measured = measure_costs(models, tweet_preprocessor, texts, None)
    assert measured.rows == 300
    assert measured.inputs == {
        "mean": {"tokens"},
        "lstm": {"tokens"},
        "features": {"tokens", "features"},
    }
    assert all(ms > 0 for ms in measured.graph_ms.values())
    # a 64-unit LSTM over 32 steps costs far more than a mean of embeddings
    assert measured.graph_ms["lstm"] > 3 * measured.graph_ms["mean"]
    both = measured.of(["mean", "lstm"])
    assert both == pytest.approx(
        measured.encode_ms(frozenset({"tokens"}))
        + measured.graph_ms["mean"]
        + measured.graph_ms["lstm"]
    )
    assert measured.encode_ms(frozenset({"tokens", "features"})) > 0
    assert np.isfinite(measured.of(["mean", "lstm", "features"]))
