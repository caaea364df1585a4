"""Hostile bundles: each is refused by `voxpop predict` (or `info`) with one `error:` line and
exit 2, even where the attacker rewrote the checksums to match (`rehash`).

The bundles are real (bundle_factory: a real Preprocessor on real tweets, ONNX members made with
onnx.helper, real ONNX Runtime sessions); every case changes one thing an attacker controls.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from bundle_factory import (  # noqa: F401 (fixtures)
    bundle_dir,
    fused_model,
    held_out_texts,
    member_model,
    rehash,
    tweet_preprocessor,
    tweet_rows,
    write_bundle,
)
from voxpop.data.text import TOKEN_PATTERN
from voxpop.ensemble import Ensemble
from voxpop.serving_cli.app import app

runner = CliRunner()
HUGE = "<a number too large for a float>"  # written into the JSON text as 1e400
SPECS = [
    {"id": "m1", "seed": 0, "use_features": False},
    {"id": "m2", "seed": 1, "use_features": False},
    {"id": "m3", "seed": 2, "use_features": True},
]


@pytest.fixture
def bundle(tmp_path, bundle_dir) -> Path:
    return shutil.copytree(bundle_dir, tmp_path / "bundle")


def refused(*args, fragments: tuple[str, ...], command: str = "predict") -> str:
    """Run a command on a hostile bundle; it must fail with exactly one `error:` line holding
    every fragment, exit 2 and write nothing to stdout."""
    extra = ["-"] if command == "predict" else []
    result = runner.invoke(app, [command, *map(str, args), *extra], input="great flight\n")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert result.stdout == ""
    return lines[0]


def shapes(pre) -> dict:
    return {"n_tokens": pre.n_tokens, "n_classes": len(pre.labels), "n_features": pre.n_features}


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


# -- no free-form regex ----------------------------------------------------------------------------
@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["pattern", "name"])
def test_a_catastrophic_tokenizer_regex_is_refused_at_once(bundle, how):
    def tamper(data):
        del data["tokenizer"]
        if how == "pattern":  # as files before format 2 stored it
            data["format_version"], data["tokenizer_pattern"] = 1, r"(a+)+$|(\w+\s?)*$"
        else:
            data["tokenizer"] = r"(a+)+$"

    edit_json(bundle / "preprocess.json", tamper)
    rehash(bundle)
    expected = (
        "tokenizer_pattern: not a pattern voxpop wrote"
        if how == "pattern"
        else "tokenizer: unknown tokenizer '(a+)+$'"
    )
    refused(bundle, fragments=(f"{bundle / 'preprocess.json'}: {expected}",))


def test_a_file_with_todays_exact_pattern_loads_as_its_name(bundle, bundle_dir, held_out_texts):
    def old_format(data):
        del data["tokenizer"]
        data["format_version"], data["tokenizer_pattern"] = 1, TOKEN_PATTERN

    edit_json(bundle / "preprocess.json", old_format)
    rehash(bundle)
    old, new = Ensemble.load(bundle, device="cpu"), Ensemble.load(bundle_dir, device="cpu")
    assert old.preprocessor.tokenizer.name == "voxpop-tweet-v1"
    np.testing.assert_array_equal(
        old.predict(held_out_texts[:50]).probs, new.predict(held_out_texts[:50]).probs
    )


# -- bounds before allocation -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_len", 2_000_000_000, "max_len: Input should be less than or equal to 10000"),
        ("max_tokens", 10**12, "max_tokens: Input should be less than or equal to 1000000"),
        ("labels", [f"l{i:05d}" for i in range(10_001)], "labels: List should have at most 10000"),
        ("ngrams.buckets", 2**40, "ngrams.buckets: Input should be less than or equal to 16777216"),
        (
            "ngrams.max_grams",
            10**9,
            "ngrams.max_grams: Input should be less than or equal to 65536",
        ),
        (
            "ngrams.char_ngrams",
            [1, 10**6],
            "ngrams.char_ngrams[1]: Input should be less than or equal",
        ),
        ("feature_means", [0.0], "feature_means: 1 values for 29 feature_names"),
        ("feature_stds", "oops", "feature_stds: Input should be a valid list"),
        ("vocabulary", ["dup", "dup"], "vocabulary: an entry appears twice"),
        ("max_len", True, "max_len: Input should be a valid integer"),
    ],
)
def test_numbers_and_sizes_beyond_the_bounds_are_refused_before_allocating(
    bundle, field, value, message
):
    def tamper(data):
        *parents, key = field.split(".")
        target = data
        for parent in parents:
            target = target[parent]
        target[key] = value

    edit_json(bundle / "preprocess.json", tamper)
    rehash(bundle)
    refused(bundle, fragments=(f"{bundle / 'preprocess.json'}: {message}",))


# -- nothing unchecked reaches ONNX Runtime ---------------------------------------------------------
def test_external_data_is_refused_whatever_its_bytes(bundle):
    """The probe that flipped every prediction: m1's weights in a file `files` does not list."""
    model = onnx.load(bundle / "members" / "m1.onnx")
    onnx.save(
        model,
        bundle / "members" / "m1.onnx",
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="m1.data",
        size_threshold=0,
    )
    data = bytearray((bundle / "members" / "m1.data").read_bytes())
    data[100:112] = bytes(12)  # change 12 bytes of the weights
    (bundle / "members" / "m1.data").write_bytes(bytes(data))
    rehash(bundle)  # m1.onnx matches again; m1.data was never listed
    refused(
        bundle,
        "--no-fused",
        fragments=("members/m1.onnx: tensor 'embedding' keeps its data in an external file",),
    )
    refused(
        bundle, fragments=("tensor 'embedding' keeps its data in an external file",), command="info"
    )


def test_external_data_inside_a_subgraph_is_refused(bundle, tweet_preprocessor):
    """An If node whose branch holds a constant kept in an external file."""
    member = member_model(**shapes(tweet_preprocessor), seed=0, use_features=False)
    constant = numpy_helper.from_array(np.zeros((1,), np.float32), "zero")
    constant.ClearField("raw_data")
    constant.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "zero.data"), ("offset", "0"), ("length", "4")):
        constant.external_data.add(key=key, value=value)
    (bundle / "members" / "zero.data").write_bytes(bytes(4))
    branch = helper.make_graph(
        [helper.make_node("Constant", [], ["branch_out"], value=constant)],
        "branch",
        [],
        [helper.make_tensor_value_info("branch_out", TensorProto.FLOAT, [1])],
    )
    graph = member.graph
    graph.initializer.append(numpy_helper.from_array(np.array(True), "always"))
    graph.node.append(
        helper.make_node("If", ["always"], ["unused"], then_branch=branch, else_branch=branch)
    )
    onnx.save(member, bundle / "members" / "m1.onnx")
    rehash(bundle)
    refused(bundle, "--no-fused", fragments=("tensor 'zero' keeps its data in an external file",))


def test_a_loop_op_is_refused(bundle, tweet_preprocessor):
    member = member_model(**shapes(tweet_preprocessor), seed=0, use_features=False)
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, [])],
    )
    member.graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(10**15, np.int64), "trips"),
            numpy_helper.from_array(np.array(True), "go"),
        ]
    )
    member.graph.node.append(helper.make_node("Loop", ["trips", "go"], [], body=body))
    onnx.save(member, bundle / "members" / "m1.onnx")
    rehash(bundle)
    refused(bundle, "--no-fused", fragments=("members/m1.onnx: holds a Loop op",))


# -- consistency at load: widths, the fused vote, the check rows ------------------------------------
@pytest.mark.parametrize("declared", ["fixed", "symbolic"])
def test_a_member_of_another_width_is_refused(bundle, tweet_preprocessor, declared):
    sizes = {**shapes(tweet_preprocessor), "n_classes": 4}
    member = member_model(**sizes, seed=0, use_features=False)
    if declared == "symbolic":  # the graph hides its width (a reshape to [batch, -1]): the check
        graph = member.graph  # rows find it
        softmax = next(node for node in graph.node if node.op_type == "Softmax")
        softmax.output[0] = "hidden_probs"
        graph.initializer.extend(
            [
                numpy_helper.from_array(np.array([0], np.int64), "first"),
                numpy_helper.from_array(np.array([-1], np.int64), "rest"),
            ]
        )
        graph.node.extend(
            [
                helper.make_node("Shape", ["tokens"], ["token_shape"]),
                helper.make_node("Gather", ["token_shape", "first"], ["batch"], axis=0),
                helper.make_node("Concat", ["batch", "rest"], ["new_shape"], axis=0),
                helper.make_node("Reshape", ["hidden_probs", "new_shape"], ["probs"]),
            ]
        )
        dim = graph.output[0].type.tensor_type.shape.dim[1]
        dim.ClearField("dim_value")
        dim.dim_param = "classes"
        onnx.checker.check_model(member)
    onnx.save(member, bundle / "members" / "m1.onnx")
    rehash(bundle)
    expected = (
        "its output probs has 4 columns, but the bundle has 3 labels"
        if declared == "fixed"
        else "gives float32 values of shape (32, 4) on the 32 check rows, expected "
        "floats of shape (32, 3)"
    )
    refused(bundle, "--no-fused", fragments=("members/m1.onnx: " + expected,))
    refused(bundle, fragments=(expected,), command="info")


def test_a_fused_graph_of_another_width_is_refused(bundle, tweet_preprocessor):
    sizes = {**shapes(tweet_preprocessor), "n_classes": 2}
    onnx.save(fused_model(SPECS, [3.0, 2.0, 1.0], **sizes), bundle / "fused.onnx")
    rehash(bundle)
    refused(bundle, fragments=("fused.onnx: its output probs has 2 columns, but the bundle has 3",))


def test_a_fused_graph_with_other_weights_is_refused_though_rehashed(bundle, tweet_preprocessor):
    onnx.save(
        fused_model(SPECS, [1.0, 1.0, 5.0], **shapes(tweet_preprocessor)), bundle / "fused.onnx"
    )
    rehash(bundle)
    refused(
        bundle,
        fragments=(
            "fused.onnx: on the bundle's 32 check rows it differs from the "
            "weighted vote of the members' stored check probabilities",
        ),
    )


def test_a_member_swapped_for_another_is_refused_though_rehashed(bundle):
    shutil.copyfile(bundle / "members" / "m2.onnx", bundle / "members" / "m1.onnx")
    rehash(bundle)
    refused(
        bundle,
        "--no-fused",
        fragments=(
            "members/m1.onnx: on the bundle's 32 check rows it "
            "differs from member m1's stored check probabilities",
        ),
    )


def test_a_reordered_vocabulary_is_refused_though_rehashed(bundle):
    edit_json(bundle / "preprocess.json", lambda data: data["vocabulary"].reverse())
    rehash(bundle)
    refused(bundle, fragments=("fused.onnx: on the bundle's 32 check rows it differs",))


def test_changed_vote_weights_without_the_fused_graph_are_refused(bundle):
    """The weights in the manifest and in fused.onnx must agree: the fused graph is checked
    against the manifest's fused weights, and `predict` runs it only for these weights."""
    edit_json(bundle / "ensemble.json", lambda m: m["fused"].update(weights=[1.0, 1.0, 1.0]))
    refused(bundle, fragments=("fused.onnx: on the bundle's 32 check rows it differs",))


# -- the manifest's fields: one line naming the file and the field ----------------------------------
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda m: m["members"][1].update(weight="heavy"),
            "members[1].weight: Input should be a valid number",
        ),
        (
            lambda m: m["members"][0].update(weight=-1.0),
            "members[0].weight: Input should be greater than or equal to 0",
        ),
        (lambda m: m["members"][2].pop("parity"), "members[2].parity: Field required"),
        (
            lambda m: m["members"][0].update(inputs=["pixels"]),
            "members[0].inputs[0]: unknown model input 'pixels'",
        ),
        (
            lambda m: m["voting"].update(default="loudest"),
            "voting.default: Input should be 'soft', 'hard', 'weighted' or 'stack'",
        ),
        (
            lambda m: m["voting"].update(weights=[1.0, 2.0]),
            "voting.weights: 2 weights for 3 members",
        ),
        (
            lambda m: m["voting"].update(weights=[1.0, HUGE, 1.0]),
            "not valid JSON (number 1e400 is too large",
        ),
        (
            lambda m: m["check_rows"]["probs"]["m2"].pop(),
            "check_rows.probs.m2: must be 32 rows of 3",
        ),
        (lambda m: m["check_rows"].pop("probs"), "check_rows.probs: Field required"),
        (lambda m: m.pop("check_rows"), "check_rows: Field required"),
        (
            lambda m: m.update(labels=["negative", "neutral", "positive", "positive"]),
            "labels: an entry appears twice",
        ),
        (
            lambda m: m["members"][0].update(id="m1\x1b[31m"),
            "members[0].id: String should match pattern",
        ),
        (
            lambda m: m["files"].update({"x\x1b[2J": "0" * 64}),
            "files['x\\x1b[2J']: file path 'x\\x1b[2J' is not a plain",
        ),
        (lambda m: m.update(extra={"a": 1}), "extra: Extra inputs are not permitted"),
        (lambda m: m["selection"].update(picks=["m9"]), "selection.picks: 'm9' is not a member id"),
        (lambda m: m["voting"].update(default="stack"), "voting.default: stack needs a stacker"),
        (
            lambda m: m.update(
                stacker={
                    "fit_on": "validation",
                    "rows": 9,
                    "folds": 5,
                    "C": 1.0,
                    "clip": 1e-7,
                    "coef": [[0.0] * 9] * 2 + [[0.0] * 8],
                    "intercept": [0.0] * 3,
                    "cv_macro_f1": {"stack": 0.5, "weighted": 0.5},
                }
            ),
            "stacker: coef must be 3 rows of 9 numbers",
        ),
        (
            lambda m: m["selection"].update(
                cost={
                    "max_ms_per_row": 1.0,
                    "rows": 9,
                    "encode_ms": 0.1,
                    "members_ms": {"m1": 0.1},
                    "total_ms": 0.2,
                }
            ),
            "selection.cost.members_ms: must hold one cost per member id",
        ),
    ],
)
def test_a_malformed_manifest_field_is_one_line_naming_it(bundle, change, message):
    path = bundle / "ensemble.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest).replace(f'"{HUGE}"', "1e400"))
    line = refused(bundle, fragments=(f"{path}: {message}",))
    assert "\x1b" not in line  # a hostile string never reaches the terminal raw


# -- signed bundles ---------------------------------------------------------------------------------
@pytest.fixture
def keys(tmp_path) -> dict[str, Path]:
    from voxpop.ensemble.signing import write_key_pair

    found = {}
    for name in ("alice", "mallory"):
        write_key_pair(tmp_path / f"{name}.pem", tmp_path / f"{name}.pub.pem")
        found[name] = tmp_path / f"{name}.pub.pem"
    found["alice_private"] = tmp_path / "alice.pem"
    return found


def test_a_signed_bundle_whose_manifest_was_rewritten_with_matching_checksums_is_refused(
    tmp_path, tweet_preprocessor, keys
):
    from voxpop.ensemble.signing import load_private_key

    bundle = write_bundle(
        tmp_path / "signed", tweet_preprocessor, sign_with=load_private_key(keys["alice_private"])
    )
    trusted = runner.invoke(
        app, ["predict", str(bundle), "-", "--trust", str(keys["alice"])], input="great flight\n"
    )
    assert trusted.exit_code == 0, trusted.output
    # mallory swaps the fused graph and member m3 for her own and rewrites every checksum
    onnx.save(
        fused_model(SPECS, [3.0, 2.0, 1.0], **shapes(tweet_preprocessor)), bundle / "fused.onnx"
    )
    rehash(bundle)
    refused(
        bundle,
        "--trust",
        keys["alice"],
        fragments=(f"{bundle / 'ensemble.sig'}: the signature does not match the manifest",),
    )
    refused(bundle, "--trust", keys["mallory"], fragments=("signed by another key",))
    (bundle / "ensemble.sig").unlink()
    refused(bundle, "--trust", keys["alice"], fragments=("not signed (no ensemble.sig)",))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not a key", "not a PEM public key"),
        (None, "key file not found"),
    ],
)
def test_a_bad_trust_key_is_one_line(bundle_dir, tmp_path, content, message):
    key = tmp_path / "key.pub.pem"
    if content is not None:
        key.write_text(content)
    refused(bundle_dir, "--trust", key, fragments=(f"{key}: {message}",))
