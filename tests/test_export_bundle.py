"""`voxpop export` / `voxpop info` on a small real run: real tweets, a real Preprocessor, four tiny
Keras models trained 1-2 epochs, written as a run directory exactly as docs/ARCHITECTURE.md says
(no Ray: it is just files). One export is shared by most tests."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import onnx
import pandas as pd
import pytest
from typer.testing import CliRunner

from run_factory import train_trials
from voxpop.data.errors import VoxpopError
from voxpop.ensemble.metrics import macro_f1
from voxpop.export.select import select_members
from voxpop.serving_cli.app import app

ROWS = 1200
SMALL = {"embed_dim": 8, "head_units": [8], "batch_size": 64}
TRIALS = {  # trial id -> (family, config, epochs)
    "trial_lstm": ("lstm", {**SMALL, "units": 8, "seed": 1}, 1),
    "trial_cnn": ("cnn", {**SMALL, "filters": 8, "kernel_sizes": [2, 3], "seed": 2}, 1),
    "trial_fusion": ("fusion", {**SMALL, "units": 8, "feature_units": 4, "seed": 3}, 1),
    "trial_lstm2": ("lstm", {**SMALL, "units": 8, "seed": 4, "learning_rate": 3e-3}, 2),
}
runner = CliRunner()
TEXT = "the crew was lovely\n"


def invoke(*args: str, input: str | None = None):
    return runner.invoke(app, [str(a) for a in args], input=input)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tweets_df):
    from voxpop.data import Preprocessor, split_rows
    from voxpop.data.rundir import write_fixture_run
    from voxpop.models.runtime import configure

    configure(threads=2)
    # (conftest's tweets_sample loses its label column under pandas 3's groupby.apply)
    df = (
        tweets_df.groupby("label")
        .sample(frac=ROWS / len(tweets_df), random_state=0)
        .sample(frac=1.0, random_state=0)
        .reset_index(drop=True)
    )
    split = split_rows(df["label"].to_numpy(), val_size=0.25, test_size=0.1, seed=0)
    run = tmp_path_factory.mktemp("runs") / "tiny"
    data = write_fixture_run(
        run,
        texts=df["text"],
        labels=df["label"],
        split=split,
        preprocessor=Preprocessor(max_len=24, ngram_buckets=2**14),
    )
    train_trials(run, data, TRIALS)
    return run


@pytest.fixture(scope="module")
def bundle(run_dir):
    out = run_dir.parent / "bundle"
    result = invoke("export", run_dir, "--out", out, "--size", 3)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def manifest(bundle):
    return json.loads((bundle / "ensemble.json").read_text())


@pytest.fixture(scope="module")
def run(run_dir):
    from voxpop.data.rundir import read_run

    return read_run(run_dir)


def onnx_probs(path, inputs):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = (
        1  # as export scores: int8 kernels round differently per thread count
    )
    session = ort.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    return session.run(["probs"], {i.name: inputs[i.name] for i in session.get_inputs()})[0]


def test_manifest_follows_the_architecture(bundle, manifest, run):
    from voxpop.ensemble.bundle import read_manifest

    assert read_manifest(bundle).model_dump(mode="json") == manifest
    assert manifest["labels"] == ["negative", "neutral", "positive"]
    assert 1 <= len(manifest["members"]) <= 3
    assert manifest["voting"]["default"] == "weighted"
    picks = manifest["selection"]["picks"]
    assert manifest["voting"]["weights"] == [
        float(picks.count(m["id"])) for m in manifest["members"]
    ]
    assert set(manifest["files"]) == {
        str(p.relative_to(bundle).as_posix()) for p in bundle.rglob("*") if p.is_file()
    } - {"ensemble.json"}
    for relative, digest in manifest["files"].items():
        assert hashlib.sha256((bundle / relative).read_bytes()).hexdigest() == digest
    assert (bundle / "preprocess.json").read_bytes() == (run.preprocess_path).read_bytes()
    train = run.data.iloc[run.split.train]
    baseline = pd.read_csv(bundle / "baseline_train.csv", keep_default_na=False)
    assert list(baseline.columns) == ["text", "label"]
    assert baseline["text"].tolist() == train["text"].tolist()
    assert baseline["label"].tolist() == train["label"].tolist()
    assert [i["name"] for i in manifest["inputs"]][0] == "tokens"


def test_check_rows_are_validation_texts_with_each_members_probabilities(bundle, manifest, run):
    check = manifest["check_rows"]
    val = run.rows("val")
    assert check["texts"] == val["text"].iloc[:32].tolist()
    assert set(check["probs"]) == {m["id"] for m in manifest["members"]}
    inputs = run.preprocessor.encode(check["texts"])
    for member in manifest["members"]:
        stored = np.asarray(check["probs"][member["id"]])
        assert stored.shape == (32, 3)
        assert np.abs(onnx_probs(bundle / member["file"], inputs) - stored).max() < 1e-6


def test_members_are_proven_against_keras(bundle, manifest, run):
    n_val = len(run.split.val)
    for member in manifest["members"]:
        assert member["parity"]["rows"] == min(n_val, 2000)
        assert member["parity"]["max_abs_diff"] <= 1e-5
        assert member["parity"]["argmax_agreement"] == 1.0
        ops = {node.op_type for node in onnx.load(bundle / member["file"]).graph.node}
        assert "Loop" not in ops
        if member["family"] in ("lstm", "fusion"):
            assert "LSTM" in ops


def test_member_onnx_reproduces_stored_val_probs(bundle, manifest, run):
    # independent of the parity check: the checkpoint's stored Keras probabilities, in split order
    inputs = run.encode(run.rows("val"))
    by_name = {c.name: c for c in run.checkpoints}
    for member in manifest["members"]:
        stored = by_name[member["checkpoint"]].val_probs()
        assert np.abs(onnx_probs(bundle / member["file"], inputs) - stored).max() < 1e-4


def test_fused_graph_equals_weighted_vote(bundle, manifest, run):
    inputs = run.encode(run.rows("val"))
    members = np.stack([onnx_probs(bundle / m["file"], inputs) for m in manifest["members"]])
    expected = np.average(members, axis=0, weights=manifest["voting"]["weights"])
    fused = onnx_probs(bundle / manifest["fused"]["file"], inputs)
    assert fused.shape == (len(run.split.val), 3)
    assert np.abs(fused - expected).max() <= 1e-5


def test_vote_scores_and_report(bundle, manifest, run):
    stored = [
        next(c for c in run.checkpoints if c.name == m["checkpoint"]).val_probs()
        for m in manifest["members"]
    ]
    weighted = np.average(np.stack(stored), axis=0, weights=manifest["voting"]["weights"])
    scores = manifest["selection"]["val_scores"]
    assert scores["weighted"] == pytest.approx(macro_f1(run.y_val, weighted.argmax(1), 3))
    assert scores["soft"] == pytest.approx(macro_f1(run.y_val, np.mean(stored, 0).argmax(1), 3))
    report = (bundle / "export_report.md").read_text()
    for checkpoint in run.checkpoints:  # every candidate, its score and a reason
        line = next(row for row in report.splitlines() if row.startswith(f"| {checkpoint.name} "))
        assert f"{checkpoint.metrics['val_macro_f1']:.4f}" in line
        assert "selected" in line
    assert "trial_lstm2's best" in report or "is its trial's best" in report
    for voting in ("soft", "hard", "weighted"):
        assert f"- {voting}: {scores[voting]:.4f}" in report


def test_info_prints_the_bundle(bundle, manifest):
    result = invoke("info", bundle)
    assert result.exit_code == 0, result.output
    assert "labels: negative, neutral, positive" in result.output
    for member in manifest["members"]:
        assert f"{member['id']}  {member['family']}" in result.output
    assert f"checksums: {len(manifest['files'])} files verified" in result.output
    assert "members/m1.onnx" in result.output


def test_info_refuses_a_tampered_member(bundle, tmp_path):
    copy = tmp_path / "tampered"
    shutil.copytree(bundle, copy)
    member = copy / "members" / "m1.onnx"
    data = bytearray(member.read_bytes())
    data[-1] ^= 0xFF
    member.write_bytes(bytes(data))
    result = invoke("info", copy)
    assert result.exit_code == 2
    assert "members/m1.onnx" in result.stderr and "sha256" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_existing_bundle_needs_force_then_top_without_fuse(bundle, run_dir, run, tmp_path):
    out = tmp_path / "b"
    shutil.copytree(bundle, out)
    refused = invoke("export", run_dir, "--out", out, "--select", "top", "--size", 2)
    assert refused.exit_code == 2 and "--force" in refused.stderr
    result = invoke(
        "export", run_dir, "--out", out, "--select", "top", "--size", 2, "--no-fuse", "--force"
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "ensemble.json").read_text())
    assert manifest["fused"] is None and not (out / "fused.onnx").exists()
    members = [m["checkpoint"] for m in manifest["members"]]
    assert manifest["voting"] == {"default": "soft", "weights": [1.0] * len(members)}
    best_per_trial = {}
    for c in run.checkpoints:
        if c.metrics["val_macro_f1"] > best_per_trial.get(c.trial_id, (-1, None))[0]:
            best_per_trial[c.trial_id] = (c.metrics["val_macro_f1"], c.name)
    ranked = [name for _, name in sorted(best_per_trial.values(), reverse=True)]
    # The best trials first; fewer than 2 when the tiny models fall below the candidate floor.
    assert 1 <= len(members) <= 2 and members == ranked[: len(members)]
    floored = select_members(
        run.checkpoints, run.y_val, method="top", size=2, metric="val_macro_f1"
    )
    assert members == [c.name for c in floored.members]
    assert not list(tmp_path.glob(".b.*"))  # no temporary sibling left behind


def test_int8_is_kept_only_when_the_val_macro_f1_holds_up(run_dir, run, tmp_path, monkeypatch):
    """The rule, both ways: int8 stays when the vote's val macro-F1 drops by at most
    max_f1_drop. A second export with the limit moved across the measured drop must decide the
    other way; each bundle then holds the files it says, scoring what its check recorded."""
    from voxpop.export import bundle as export_bundle

    def export(out):
        result = invoke(
            "export", run_dir, "--out", out, "--select", "top", "--size", 2, "--quantize", "int8"
        )
        assert result.exit_code == 0, result.output
        return json.loads((out / "ensemble.json").read_text())

    first = export(tmp_path / "default")
    check = first["quantization_check"]
    scores, limit = check["val_macro_f1"], check["max_f1_drop"]
    drop = scores["fp32"] - scores["int8"]
    assert check["kept"] == (drop <= limit) and limit == export_bundle.MAX_F1_DROP
    # 3 of the 4 trials are recurrent (lstm, fusion's bilstm): int8 is offered to some member
    assert check["members"]
    # just below the measured drop discards int8; exactly at it keeps it
    monkeypatch.setattr(export_bundle, "MAX_F1_DROP", drop - 1e-9 if check["kept"] else drop)
    second = export(tmp_path / "moved")
    assert second["quantization_check"]["kept"] is not check["kept"]
    assert second["quantization_check"]["val_macro_f1"] == scores  # same members, same scores

    inputs = run.encode(run.rows("val"))
    for out, manifest in ((tmp_path / "default", first), (tmp_path / "moved", second)):
        kept = manifest["quantization_check"]["kept"]
        version = "int8" if kept else "fp32"
        assert manifest["quantization"] == ("int8" if kept else "none")
        files = [m["file"] for m in manifest["members"]] + [manifest["fused"]["file"]]
        ops = {n.op_type for f in files for n in onnx.load(out / f).graph.node}
        assert bool(ops & {"DynamicQuantizeLSTM", "MatMulInteger", "DynamicQuantizeLinear"}) == kept
        # int8 only where it pays: the members with a recurrent op, never a convolution
        assert "ConvInteger" not in ops
        for member in manifest["members"]:
            member_ops = {n.op_type for n in onnx.load(out / member["file"]).graph.node}
            recurrent = bool(member_ops & {"LSTM", "GRU", "DynamicQuantizeLSTM"})
            assert (member["id"] in manifest["quantization_check"]["members"]) == recurrent
            assert bool(member_ops & {"DynamicQuantizeLSTM", "MatMulInteger"}) == (
                kept and recurrent
            )
        sizes = manifest["quantization_check"]["bytes"]
        assert sum((out / f).stat().st_size for f in files) == sizes[version]
        # The bundle's members, run by ONNX Runtime on all validation rows at once (int8
        # quantizes activations per batch), vote to the score the check recorded.
        probs = np.mean([onnx_probs(out / m["file"], inputs) for m in manifest["members"]], axis=0)
        assert macro_f1(run.y_val, probs.argmax(axis=1), probs.shape[1]) == pytest.approx(
            scores[version], abs=1e-9
        )
        report = (out / "export_report.md").read_text()
        assert f"fp32 {scores['fp32']:.4f}, int8 {scores['int8']:.4f}" in report
        assert ("- int8 kept" if kept else "- int8 discarded (fp32 files kept)") in report
        assert "- int8 offered for: " in report


def test_parity_failure_names_the_member(bundle, manifest, run_dir, tmp_path):
    # the first member (rank 1 by val macro-F1 under --select top) differs from Keras by > 0
    from voxpop.export import export_bundle

    progress = []
    export_bundle(
        run_dir,
        tmp_path / "t",
        select="top",
        size=1,
        fuse=False,
        on_member=lambda *call: progress.append(call),
    )
    assert progress == [(1, 1, "m1")]  # what drives the CLI's progress bar
    diff = json.loads((tmp_path / "t" / "ensemble.json").read_text())["members"][0]["parity"][
        "max_abs_diff"
    ]
    assert diff > 0
    result = invoke(
        "export",
        run_dir,
        "--out",
        tmp_path / "p",
        "--select",
        "top",
        "--size",
        1,
        "--no-fuse",
        "--parity-tol",
        f"{diff / 2:g}",
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("error: member m1 (") and "--parity-tol" in result.stderr
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--quantize", "int4"], "--quantize: unknown value 'int4' (choose from none, int8)"),
        (
            ["--select", "best"],
            "--select: unknown method 'best' (choose from top, greedy, diverse)",
        ),
        (["--metric", "f2"], "--metric: unknown metric 'f2' (choose from val_macro_f1"),
        (["--opset", "19"], "--opset: 19 is not supported (valid: 7 to 18)"),
        (["--combine", "blend"], "--combine: unknown value 'blend' (choose from vote, stack)"),
        (["--max-ms-per-row", "0"], "--max-ms-per-row: must be > 0, got 0"),
        (["--max-ms-per-row", "1e-6"], "--max-ms-per-row 1e-06: no candidate fits; the cheapest, "),
    ],
)
def test_bad_options_are_one_line_errors(run_dir, tmp_path, args, message):
    result = invoke("export", run_dir, "--out", tmp_path / "x", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_run_is_a_clear_error(tmp_path):
    result = invoke("export", tmp_path / "nope", "--out", tmp_path / "x")
    assert result.exit_code == 2
    assert "nope: run directory not found" in result.stderr


def test_export_bundle_raises_for_a_directory_that_is_not_a_bundle(run_dir, tmp_path):
    from voxpop.export import export_bundle

    (tmp_path / "precious").mkdir()
    with pytest.raises(VoxpopError, match="not an ensemble bundle"):
        export_bundle(run_dir, tmp_path / "precious", force=True)


def test_signed_export_is_trusted_and_a_rewritten_manifest_is_not(bundle, run_dir, tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir()
    made = invoke("keygen", keys / "alice.pem")
    assert made.exit_code == 0, made.output
    assert (keys / "alice.pem").stat().st_mode & 0o077 == 0  # the private key is the owner's only
    out = tmp_path / "signed"
    result = invoke(
        "export",
        run_dir,
        "--out",
        out,
        "--select",
        "top",
        "--size",
        1,
        "--no-fuse",
        "--sign",
        keys / "alice.pem",
    )
    assert result.exit_code == 0, result.output
    assert "signed" in result.stdout and (out / "ensemble.sig").is_file()
    trusted = invoke("predict", out, "-", "--trust", keys / "alice.pub.pem", input=TEXT)
    assert trusted.exit_code == 0, trusted.output
    info = invoke("info", out, "--trust", keys / "alice.pub.pem")
    assert "signature: verified, signed by the trusted key" in info.stdout
    # Another key, an unsigned bundle and a rewritten manifest are each refused.
    assert invoke("keygen", keys / "mallory.pem").exit_code == 0
    other = invoke("predict", out, "-", "--trust", keys / "mallory.pub.pem", input=TEXT)
    assert other.exit_code == 2
    assert "signed by another key" in other.stderr and len(other.stderr.splitlines()) == 1
    unsigned = invoke("predict", bundle, "-", "--trust", keys / "alice.pub.pem", input=TEXT)
    assert unsigned.exit_code == 2 and "not signed (no ensemble.sig)" in unsigned.stderr
    manifest = json.loads((out / "ensemble.json").read_text())
    manifest["voting"]["default"] = "hard"  # a valid manifest, checksums all still matching
    (out / "ensemble.json").write_text(json.dumps(manifest, indent=2))
    assert invoke("predict", out, "-", input=TEXT).exit_code == 0  # no --trust: just a bundle
    rewritten = invoke("predict", out, "-", "--trust", keys / "alice.pub.pem", input=TEXT)
    assert rewritten.exit_code == 2
    assert rewritten.stderr.startswith(
        f"error: {out / 'ensemble.sig'}: the signature does not "
        "match the manifest under the trusted key"
    )
    assert len(rewritten.stderr.splitlines()) == 1 and rewritten.stdout == ""


def test_a_bad_signing_key_fails_before_any_conversion(run_dir, tmp_path):
    (tmp_path / "key.pem").write_text("not a key")
    result = invoke("export", run_dir, "--out", tmp_path / "b", "--sign", tmp_path / "key.pem")
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"error: {tmp_path / 'key.pem'}: not an unencrypted PEM private key"
    )
    assert not (tmp_path / "b").exists()


def test_combine_stack_under_a_cost_budget(run_dir, run, tmp_path):
    """--combine stack: the stacker in the manifest and the fused graph; --max-ms-per-row: the
    measured costs in the manifest and the report (a budget everything fits, so that the test
    does not hang on the machine's load; the budget's effect is test_export_cost's)."""
    from voxpop.ensemble import Ensemble
    from voxpop.ensemble.voting import stack_probs

    out = tmp_path / "stacked"
    result = invoke(
        "export", run_dir, "--out", out, "--size", 3, "--combine", "stack", "--max-ms-per-row", 1000
    )
    assert result.exit_code == 0, result.output
    assert "cross-validated macro-F1 stack" in result.stdout
    assert "ms per row (budget 1000)" in result.stdout
    ensemble = Ensemble.load(out, device="cpu", threads=1, fused=False)
    manifest = ensemble.manifest
    stacker = manifest.stacker
    n_members = len(manifest.members)
    assert stacker.fit_on == "validation" and stacker.rows == len(run.y_val)
    assert np.asarray(stacker.coef).shape == (3, 3 * n_members)
    assert manifest.fused.stack_max_abs_diff <= 1e-5
    wins = stacker.cv_macro_f1["stack"] > stacker.cv_macro_f1["weighted"]
    assert manifest.voting.default == ("stack" if wins else "weighted")
    cost = manifest.selection.cost
    assert cost.max_ms_per_row == 1000 and cost.rows == min(512, len(run.y_val))
    assert sorted(cost.members_ms) == manifest.member_ids
    assert cost.total_ms == pytest.approx(cost.encode_ms + sum(cost.members_ms.values()))
    assert 0 < cost.total_ms <= 1000
    report = (out / "export_report.md").read_text()
    assert "## Cost per row (--max-ms-per-row)" in report and "ms/row alone" in report
    assert f"- total: {cost.total_ms:.3f} ms per row" in report
    assert "## Stacking (--combine stack)" in report
    assert f"- stack: {stacker.cv_macro_f1['stack']:.4f}" in report
    # the fused graph's stack output equals the stacker applied with numpy to the members
    texts = run.rows("test")["text"].astype(str).tolist()
    separate = ensemble.predict(texts, voting="stack")
    numpy_probs = stack_probs(list(separate.member_probs.values()), stacker)
    fused = Ensemble.load(out, device="cpu", threads=1).predict(texts, voting="stack")
    assert np.abs(fused.probs - numpy_probs).max() < 1e-5
    ensemble.close()
    # evaluate scores the stacker beside the votes, by default
    table = tmp_path / "test.csv"
    run.rows("test")[["text", "label"]].to_csv(table, index=False)
    evaluated = invoke(
        "evaluate",
        out,
        table,
        "--out",
        tmp_path / "report",
        "--no-baseline",
        "--report-format",
        "json",
    )
    assert evaluated.exit_code == 0, evaluated.output
    votes = json.loads((tmp_path / "report" / "report.json").read_text())["votes"]
    assert set(votes) == {"soft", "hard", "weighted", "stack"}
    y_test = run.preprocessor.encode_labels(run.rows("test")["label"].astype(str).to_numpy())
    assert votes["stack"]["macro_f1"] == pytest.approx(
        macro_f1(y_test, numpy_probs.argmax(axis=1), 3), abs=1e-9
    )
