"""Small real ensemble bundles for tests: a real Preprocessor fitted on real tweets, and member ONNX
graphs written with onnx.helper (embedding Gather -> mean over the sequence -> dense -> softmax),
each with its own random weights, one of them also reading `features`; a fused graph with the
weighted soft vote inside; ensemble.json built as the typed records and written by the bundle's
owner (real sha256s, check rows with the members' real probabilities).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
EMBED_DIM = 8


def _mean_encoder(p: str, rng, n_tokens: int, dim: int):
    """Embedding mean over the whole (padded) sequence: [batch, dim]."""
    init = {"embedding": rng.normal(0, 1.0, (n_tokens, dim)).astype(np.float32)}
    nodes = [
        helper.make_node("Gather", [f"{p}embedding", "tokens"], [f"{p}embedded"], axis=0),
        helper.make_node("ReduceMean", [f"{p}embedded"], [f"{p}encoded"], axes=[1], keepdims=0),
    ]
    return nodes, init


def _lstm_encoder(p: str, rng, n_tokens: int, dim: int):
    """Embedding -> one ONNX LSTM op -> final hidden state: [batch, dim]. Shaped
    like the recurrent members tf2onnx exports, for benchmarks."""
    scale = 1 / np.sqrt(dim)
    init = {
        "embedding": rng.normal(0, 1.0, (n_tokens, dim)).astype(np.float32),
        "lstm_w": rng.normal(0, scale, (1, 4 * dim, dim)).astype(np.float32),
        "lstm_r": rng.normal(0, scale, (1, 4 * dim, dim)).astype(np.float32),
        "lstm_b": np.zeros((1, 8 * dim), np.float32),
        "axis0": np.array([0], np.int64),
    }
    nodes = [
        helper.make_node("Gather", [f"{p}embedding", "tokens"], [f"{p}embedded"], axis=0),
        helper.make_node("Transpose", [f"{p}embedded"], [f"{p}time_major"], perm=[1, 0, 2]),
        helper.make_node(
            "LSTM",
            [f"{p}time_major", f"{p}lstm_w", f"{p}lstm_r", f"{p}lstm_b"],
            ["", f"{p}last_hidden"],
            hidden_size=dim,
        ),
        helper.make_node("Squeeze", [f"{p}last_hidden", f"{p}axis0"], [f"{p}encoded"]),
    ]
    return nodes, init


# encoder kind -> (prefix, rng, n_tokens, dim) -> (nodes, initializers by unprefixed name)
ENCODERS = {"mean": _mean_encoder, "lstm": _lstm_encoder}


def member_nodes(
    prefix: str,
    *,
    n_tokens: int,
    n_classes: int,
    n_features: int,
    seed: int,
    use_features: bool,
    output: str,
    encoder: str = "mean",
    dim: int = EMBED_DIM,
):
    """Nodes and initializers of one member reading graph inputs `tokens` (and `features`)."""
    rng = np.random.default_rng(seed)
    p = prefix
    nodes, init = ENCODERS[encoder](p, rng, n_tokens, dim)
    init["dense"] = rng.normal(0, 1.5, (dim, n_classes)).astype(np.float32)
    init["bias"] = rng.normal(0, 0.3, (n_classes,)).astype(np.float32)
    nodes.append(helper.make_node("MatMul", [f"{p}encoded", f"{p}dense"], [f"{p}text_logits"]))
    logits = f"{p}text_logits"
    if use_features:
        init["feature_dense"] = rng.normal(0, 0.5, (n_features, n_classes)).astype(np.float32)
        nodes += [
            helper.make_node("MatMul", ["features", f"{p}feature_dense"], [f"{p}feature_logits"]),
            helper.make_node("Add", [logits, f"{p}feature_logits"], [f"{p}both_logits"]),
        ]
        logits = f"{p}both_logits"
    nodes += [
        helper.make_node("Add", [logits, f"{p}bias"], [f"{p}logits"]),
        helper.make_node("Softmax", [f"{p}logits"], [output], axis=-1),
    ]
    initializers = [numpy_helper.from_array(value, f"{p}{name}") for name, value in init.items()]
    return nodes, initializers


def _inputs(n_features: int, use_features: bool):
    inputs = [helper.make_tensor_value_info("tokens", TensorProto.INT32, ["batch", "seq"])]
    if use_features:
        inputs.append(
            helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", n_features])
        )
    return inputs


def _model(nodes, initializers, inputs, n_classes: int) -> onnx.ModelProto:
    output = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", n_classes])
    graph = helper.make_graph(nodes, "member", inputs, [output], initializer=initializers)
    # IR 8, as tf2onnx writes for opset 17 (onnx's own default, 14, is newer than what
    # onnxruntime-gpu 1.31, the newest GPU build, reads: IR 13 at most).
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def member_model(
    *, n_tokens, n_classes, n_features, seed, use_features, encoder="mean", dim=EMBED_DIM
) -> onnx.ModelProto:
    """One member as an ONNX model with output `probs`."""
    nodes, inits = member_nodes(
        "",
        n_tokens=n_tokens,
        n_classes=n_classes,
        n_features=n_features,
        seed=seed,
        use_features=use_features,
        output="probs",
        encoder=encoder,
        dim=dim,
    )
    return _model(nodes, inits, _inputs(n_features, use_features), n_classes)


def fused_model(
    specs: list[dict],
    weights: list[float],
    *,
    n_tokens,
    n_classes,
    n_features,
    encoder="mean",
    dim=EMBED_DIM,
) -> onnx.ModelProto:
    """All members on shared inputs and probs = sum_i w_i probs_i / sum_i w_i."""
    nodes, inits, weighted = [], [], []
    for spec, weight in zip(specs, weights):
        p = f"{spec['id']}/"
        member, member_inits = member_nodes(
            p,
            n_tokens=n_tokens,
            n_classes=n_classes,
            n_features=n_features,
            seed=spec["seed"],
            use_features=spec["use_features"],
            output=f"{p}probs",
            encoder=encoder,
            dim=dim,
        )
        nodes += member + [helper.make_node("Mul", [f"{p}probs", f"{p}w"], [f"{p}weighted"])]
        inits += member_inits + [
            numpy_helper.from_array(np.array(weight / sum(weights), np.float32), f"{p}w")
        ]
        weighted.append(f"{p}weighted")
    nodes.append(helper.make_node("Sum", weighted, ["probs"]))
    any_features = any(spec["use_features"] for spec in specs)
    return _model(nodes, inits, _inputs(n_features, any_features), n_classes)


# Texts of the check rows when a test gives none (real tweets give the fixtures' bundles theirs).
CHECK_TEXTS = [
    "the flight was great, thank you!",
    "worst service ever @united #fail",
    "is the 8:15 to boston on time?",
    "",
    "loved it 😍😍",
    "meh... ok i guess",
]


def onnx_probs(path: Path, inputs: dict) -> list[list[float]]:
    """What ONNX Runtime gives for the model at `path` on `inputs`, as the manifest stores it."""
    import onnxruntime as ort

    from voxpop.ensemble.manifest import check_values

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    probs = session.run(["probs"], {i.name: inputs[i.name] for i in session.get_inputs()})[0]
    return check_values(probs)


def write_bundle(
    out: Path,
    preprocessor,
    *,
    n_members: int = 3,
    weights=None,
    fused: bool = True,
    feature_member: bool = True,
    encoder: str = "mean",
    dim: int = EMBED_DIM,
    check_texts=None,
    sign_with=None,
) -> Path:
    """Write a complete bundle directory at `out` and return it.

    Member i has id m{i+1} and seed i; the last member reads `features` when feature_member.
    encoder: "mean" (tiny, for tests) or "lstm" (realistic cost, for benchmarks); dim its width.
    The manifest is built as the typed records and written by the bundle's owner, as export does;
    its check rows are `check_texts` (default CHECK_TEXTS) with each member's real probabilities.
    """
    from voxpop.ensemble.bundle import write_manifest
    from voxpop.ensemble.manifest import (
        CheckRows,
        Fused,
        InputSpec,
        Manifest,
        Member,
        Parity,
        Selection,
        ValMetrics,
        Voting,
    )

    out = Path(out)
    (out / "members").mkdir(parents=True)
    weights = list(weights or [float(n_members - i) for i in range(n_members)])
    n_tokens, n_classes = preprocessor.n_tokens, len(preprocessor.labels)
    n_features = preprocessor.n_features
    specs = [
        {"id": f"m{i + 1}", "seed": i, "use_features": feature_member and i == n_members - 1}
        for i in range(n_members)
    ]
    preprocessor.to_json(out / "preprocess.json")
    texts = list(CHECK_TEXTS if check_texts is None else check_texts)
    check_inputs = preprocessor.encode(texts, inputs=["tokens", "features"])
    members, check_probs = [], {}
    for spec, weight in zip(specs, weights):
        relative = f"members/{spec['id']}.onnx"
        model = member_model(
            n_tokens=n_tokens,
            n_classes=n_classes,
            n_features=n_features,
            seed=spec["seed"],
            use_features=spec["use_features"],
            encoder=encoder,
            dim=dim,
        )
        onnx.save(model, out / relative)
        check_probs[spec["id"]] = onnx_probs(out / relative, check_inputs)
        members.append(
            Member(
                id=spec["id"],
                file=relative,
                family=f"test_{encoder}",
                config={"seed": spec["seed"]},
                trial_id=f"trial_{spec['id']}",
                epoch=1,
                inputs=["tokens", "features"] if spec["use_features"] else ["tokens"],
                val_metrics=ValMetrics(val_macro_f1=0.5, val_accuracy=0.5, val_loss=1.0),
                weight=weight,
                parity=Parity(max_abs_diff=0.0, argmax_agreement=1.0, rows=0),
            )
        )
    fused_entry = None
    if fused:
        onnx.save(
            fused_model(
                specs,
                weights,
                n_tokens=n_tokens,
                n_classes=n_classes,
                n_features=n_features,
                encoder=encoder,
                dim=dim,
            ),
            out / "fused.onnx",
        )
        fused_entry = Fused(file="fused.onnx", weights=weights)
    manifest = Manifest(
        schema_version=2,
        voxpop_version="0.1.0",
        created="2026-01-01T00:00:00Z",
        labels=list(preprocessor.labels),
        inputs=[
            InputSpec(name="tokens", dtype="int32", shape=["batch", "seq"]),
            InputSpec(name="features", dtype="float32", shape=["batch", n_features]),
        ],
        preprocess="preprocess.json",
        members=members,
        voting=Voting(default="weighted", weights=weights),
        selection=Selection(method="test", metric="val_macro_f1"),
        fused=fused_entry,
        check_rows=CheckRows(texts=texts, probs=check_probs),
        files={},
    )
    write_manifest(out, manifest, sign_with=sign_with)
    return out


def rewrite_manifest(bundle: Path, **changes) -> None:
    """Change top-level keys of a bundle's ensemble.json (for tests of bad bundles)."""
    path = Path(bundle) / "ensemble.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


def rehash(bundle: Path) -> None:
    """Set every sha256 in a bundle's ensemble.json to its file's current bytes, as an attacker
    who changed files and rewrote the checksums would."""
    path = Path(bundle) / "ensemble.json"
    manifest = json.loads(path.read_text())
    manifest["files"] = {name: _sha256(Path(bundle) / name) for name in manifest["files"]}
    path.write_text(json.dumps(manifest))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- pytest fixtures (import them into a test module to use them) -------------------------------
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tweet_rows(tweets_df):
    """2,000 random real tweets (seed 0). Not conftest's tweets_sample: under pandas 3 its
    groupby().apply drops the `label` column."""
    return tweets_df.sample(n=2000, random_state=0).reset_index(drop=True)


@pytest.fixture(scope="session")
def tweet_preprocessor(tweet_rows):
    """A real Preprocessor fitted on 1,500 real tweets (small vocabulary, short max_len)."""
    from voxpop.data import Preprocessor

    train = tweet_rows.iloc[:1500]
    return Preprocessor(max_tokens=3000, max_len=32).fit(
        train["text"].tolist(), train["label"].astype(str).tolist()
    )


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory, tweet_preprocessor, tweet_rows) -> Path:
    """A 3-member bundle with a fused graph (weights 3, 2, 1; member m3 reads `features`).
    Session-scoped: tests must not modify it (copy it first)."""
    return write_bundle(
        tmp_path_factory.mktemp("bundle") / "bundle",
        tweet_preprocessor,
        check_texts=tweet_rows["text"].iloc[1900:1932].astype(str).tolist(),
    )


@pytest.fixture(scope="session")
def held_out_texts(tweet_rows) -> list[str]:
    """500 real tweets the preprocessor was not fitted on."""
    return tweet_rows["text"].iloc[1500:].astype(str).tolist()
