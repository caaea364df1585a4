"""Stacking: the stacker fitted at export (scikit-learn) and applied at predict time (numpy, or the
fused ONNX graph's `stack_probs`), on constructed probabilities and on the real test bundle."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from bundle_factory import bundle_dir, held_out_texts, tweet_preprocessor, tweet_rows  # noqa: F401 (fixtures)
from voxpop.data.errors import VoxpopError
from voxpop.ensemble import Ensemble
from voxpop.ensemble.bundle import read_manifest, write_manifest
from voxpop.ensemble.manifest import STACK_OUTPUT, Manifest
from voxpop.ensemble.metrics import macro_f1
from voxpop.ensemble.voting import soft_vote, stack_probs
from voxpop.export.fuse import fuse_members
from voxpop.export.stack import StackRows, fit_stacker, stack_wins
from voxpop.serving_cli.app import app


def _softmax(logits):
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def _anti_correlated(n=600, n_classes=3, seed=0) -> StackRows:
    """Member 1 is right 60% of the time; member 2 is confident and always wrong in a fixed way
    (it names class y+1), so it is perfectly informative, but only to a stacker."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    noisy = np.where(rng.random(n) < 0.6, y, rng.integers(0, n_classes, n))
    good = _softmax(2.0 * np.eye(n_classes)[noisy] + rng.normal(0, 0.3, (n, n_classes)))
    wrong = _softmax(
        4.0 * np.eye(n_classes)[(y + 1) % n_classes] + rng.normal(0, 0.3, (n, n_classes))
    )
    return StackRows(member_probs=[good, wrong], y=y, fit_on="validation")


def test_stacker_beats_the_vote_where_a_member_is_anti_correlated():
    rows = _anti_correlated()
    stacker = fit_stacker(rows, n_classes=3)
    assert stacker.cv_macro_f1["stack"] > 0.95
    assert stacker.cv_macro_f1["weighted"] < 0.75  # greedy can only keep or drop member 2
    assert stack_wins(stacker)
    # The weights are recoverable: on fresh rows, the stored numbers alone (numpy) decode
    # member 2's systematic error.
    fresh = _anti_correlated(seed=1)
    predicted = stack_probs(fresh.member_probs, stacker).argmax(axis=1)
    assert macro_f1(fresh.y, predicted, 3) > 0.95
    vote = soft_vote(fresh.member_probs).argmax(axis=1)
    assert macro_f1(fresh.y, vote, 3) < 0.75
    coef = np.asarray(stacker.coef)  # [class, member 2's log-prob of class] is the strong weight
    member2 = coef[:, 3:]
    assert all(member2[k, (k + 1) % 3] == member2[k].max() for k in range(3))


def test_stacker_keeps_the_vote_when_stacking_adds_nothing():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    same = _softmax(3.0 * np.eye(3)[y] + rng.normal(0, 1.0, (300, 3)))
    stacker = fit_stacker(StackRows([same, same], y, "validation"), n_classes=3)
    assert stacker.cv_macro_f1["weighted"] >= stacker.cv_macro_f1["stack"] - 0.02
    assert stack_wins(stacker) == (stacker.cv_macro_f1["stack"] > stacker.cv_macro_f1["weighted"])


def test_two_classes_store_one_row_per_class():
    rows = _anti_correlated(n_classes=2)
    stacker = fit_stacker(rows, n_classes=2)
    assert np.asarray(stacker.coef).shape == (2, 4) and len(stacker.intercept) == 2
    assert macro_f1(rows.y, stack_probs(rows.member_probs, stacker).argmax(axis=1), 2) > 0.95


def test_too_few_rows_of_a_class_is_a_user_error():
    rows = _anti_correlated(n=30)
    y = rows.y.copy()
    y[y == 2] = 0
    y[0] = 2
    with pytest.raises(VoxpopError, match="at least 2 of every class"):
        fit_stacker(StackRows(rows.member_probs, y, "validation"), n_classes=3)


@pytest.fixture(scope="module")
def stacked_bundle(bundle_dir, tweet_rows, tmp_path_factory):
    """bundle_factory's 3-member bundle, with a stacker fitted on the members' real
    probabilities for 300 labelled tweets and the fused graph rebuilt with its stack output."""
    out = tmp_path_factory.mktemp("stacked") / "bundle"
    shutil.copytree(bundle_dir, out)
    separate = Ensemble.load(out, device="cpu", threads=1, fused=False)
    rows = tweet_rows.iloc[1500:1800]
    member_probs = separate.predict(rows["text"].astype(str).tolist()).member_probs
    y = separate.preprocessor.encode_labels(rows["label"].astype(str).to_numpy())
    separate.close()
    manifest = read_manifest(out)
    stacker = fit_stacker(StackRows(list(member_probs.values()), y, "validation"), n_classes=3)
    members = {m.id: onnx.load(out / m.file) for m in manifest.members}
    onnx.save(fuse_members(members, manifest.fused.weights, stacker=stacker), out / "fused.onnx")
    fused = manifest.fused.model_copy(update={"stack_max_abs_diff": 0.0})
    write_manifest(out, manifest.model_copy(update={"stacker": stacker, "fused": fused}))
    return out


def test_fused_stack_output_equals_numpy_and_separate_sessions(stacked_bundle, held_out_texts):
    fused = Ensemble.load(stacked_bundle, device="cpu", threads=1)
    separate = Ensemble.load(stacked_bundle, device="cpu", threads=1, fused=False)
    assert fused.runs_fused(voting="stack") and not separate.runs_fused(voting="stack")
    in_graph = fused.predict(held_out_texts, voting="stack")
    apart = separate.predict(held_out_texts, voting="stack")
    numpy_probs = stack_probs(list(apart.member_probs.values()), separate.manifest.stacker)
    assert np.abs(in_graph.probs - numpy_probs).max() < 1e-5
    assert np.abs(apart.probs - numpy_probs).max() == 0
    assert (in_graph.label_ids == apart.label_ids).all()
    # the weighted vote is still the graph's `probs`
    assert (
        np.abs(
            fused.predict(held_out_texts, voting="weighted").probs
            - separate.predict(held_out_texts, voting="weighted").probs
        ).max()
        < 1e-5
    )
    assert fused.votings == ["soft", "hard", "weighted", "stack"]
    separate.close()


def test_manifest_round_trip_and_its_rules(stacked_bundle):
    manifest = read_manifest(stacked_bundle)
    again = Manifest.parse(manifest.to_json().encode(), source="ensemble.json")
    assert again == manifest and again.stacker.coef == manifest.stacker.coef
    as_dict = manifest.model_dump(mode="json")
    with pytest.raises(VoxpopError, match="stacker: coef must be 3 rows of 9"):
        Manifest.from_value(
            {
                **as_dict,
                "stacker": {
                    **as_dict["stacker"],
                    "coef": [row[:-1] for row in as_dict["stacker"]["coef"]],
                },
            },
            source="ensemble.json",
        )
    without = {**as_dict, "stacker": None}
    with pytest.raises(VoxpopError, match="stack needs a stacker"):
        Manifest.from_value(
            {**without, "fused": None, "voting": {**as_dict["voting"], "default": "stack"}},
            source="ensemble.json",
        )
    with pytest.raises(VoxpopError, match="stack_max_abs_diff: set without a stacker"):
        Manifest.from_value(without, source="ensemble.json")


def test_a_changed_stacker_is_refused_by_the_fused_check(stacked_bundle, tmp_path):
    changed = tmp_path / "bundle"
    shutil.copytree(stacked_bundle, changed)
    manifest = read_manifest(changed)
    stacker = manifest.stacker.model_copy(update={"intercept": [5.0, -5.0, 0.0]})
    write_manifest(changed, manifest.model_copy(update={"stacker": stacker}))
    with pytest.raises(VoxpopError, match="differs from the stacker"):
        Ensemble.load(changed, device="cpu", threads=1)


def test_old_bundles_load_and_refuse_stack_in_one_line(bundle_dir, held_out_texts, tmp_path):
    ensemble = Ensemble.load(bundle_dir, device="cpu", threads=1)
    assert ensemble.manifest.stacker is None and "stack" not in ensemble.votings
    with pytest.raises(VoxpopError, match="has no stacker"):
        ensemble.predict(held_out_texts[:3], voting="stack")
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(held_out_texts[:3]) + "\n")
    result = CliRunner().invoke(app, ["predict", str(bundle_dir), str(texts), "--voting", "stack"])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error:") and "has no stacker" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("fused", [True, False])
def test_stack_takes_neither_weights_nor_a_member_subset(stacked_bundle, held_out_texts, fused):
    ensemble = Ensemble.load(stacked_bundle, device="cpu", threads=1, fused=fused)
    with pytest.raises(VoxpopError, match="takes no --weights"):
        ensemble.predict(held_out_texts[:3], voting="stack", weights=[1, 1, 1])
    with pytest.raises(VoxpopError, match="reads every member"):
        ensemble.predict(held_out_texts[:3], voting="stack", members=["m1", "m2"])
    assert STACK_OUTPUT == "stack_probs"
    ensemble.close()


def test_info_shows_the_stacker_after_checking_its_graph_output(stacked_bundle, bundle_dir):
    shown = CliRunner().invoke(app, ["info", str(stacked_bundle)])
    assert shown.exit_code == 0, shown.output
    assert (
        "stacker: logistic regression on 300 validation rows, 5-fold cross-validated"
        in shown.output
    )
    assert "check rows: 4 graphs give the stored probabilities" in shown.output
    old = CliRunner().invoke(app, ["info", str(bundle_dir)])
    assert "stacker: no (export --combine stack)" in old.output


def test_check_rows_keep_small_probabilities_to_float32_precision():
    from voxpop.ensemble.manifest import check_values

    probs = np.array([[1.4e-7, 0.9999998], [3.3e-12, 1.0]], np.float32)
    stored = np.asarray(check_values(probs))
    np.testing.assert_array_equal(stored.astype(np.float32), probs)  # float32 round trip
    # what the stacker reads: log(max(p, clip)) of the stored value equals that of the graph's
    np.testing.assert_allclose(
        np.log(np.maximum(stored, 1e-7)), np.log(np.maximum(probs, 1e-7)), atol=1e-6
    )
