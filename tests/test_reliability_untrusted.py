"""Untrusted files and the embedded Ray's exposure.

Already proven elsewhere (not repeated): sha256 mismatch, missing file, `../`, absolute and
symlinked member paths, a file not listed, invalid and oversized ensemble.json
(test_ensemble_bundle.py, test_predict_cli.py); the embedded Ray listening on loopback only
(test_tune_local.py). Added here: a member swapped for another valid member or truncated, a size
limit on a bundle's preprocess.json, no unsafe deserialisation in src/, Keras loads in safe mode,
the dashboard off and token authentication on.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from bundle_factory import bundle_dir, tweet_preprocessor, tweet_rows  # noqa: F401
from voxpop.data.errors import VoxpopError
from voxpop.ensemble import Ensemble
from voxpop.serving_cli.app import app

SRC = Path(__file__).resolve().parents[1] / "src" / "voxpop"
runner = CliRunner()


@pytest.fixture
def bundle_copy(tmp_path, bundle_dir) -> Path:
    return shutil.copytree(bundle_dir, tmp_path / "bundle")


@pytest.mark.parametrize("damage", ["swapped", "truncated"])
def test_a_swapped_or_truncated_member_is_refused_by_predict(bundle_copy, damage):
    member = bundle_copy / "members" / "m1.onnx"
    if damage == "swapped":  # a valid ONNX member of the same shape, just not the exported one
        shutil.copyfile(bundle_copy / "members" / "m2.onnx", member)
    else:
        member.write_bytes(member.read_bytes()[: member.stat().st_size // 2])
    result = runner.invoke(app, ["predict", str(bundle_copy), "-"], input="great flight\n")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {bundle_copy}: sha256 of 'members/m1.onnx' does not match ensemble.json "
        "(the file was changed or corrupted; re-export the bundle)"
    ]
    assert result.stdout == ""


def test_an_oversized_preprocess_json_is_refused_before_parsing(bundle_copy, monkeypatch):
    import voxpop.data.preprocess as preprocess

    size = (bundle_copy / "preprocess.json").stat().st_size
    Ensemble.load(bundle_copy)  # loads under the real limit
    monkeypatch.setattr(preprocess, "MAX_JSON_BYTES", size - 1)
    with pytest.raises(
        VoxpopError,
        match=rf"preprocess.json: {size} bytes is larger than a "
        rf"preprocessor file may be \({size - 1}\)",
    ):
        Ensemble.load(bundle_copy)


# -- source checks: what reads a user's file -------------------------------------------------------
UNSAFE = {
    "import pickle": r"^\s*(import|from)\s+(c?pickle|dill|cloudpickle)\b",
    "joblib": r"\bjoblib\b",
    "eval(": r"(?<![\w.])eval\(",
    "exec(": r"(?<![\w.])exec\(",
    "allow_pickle=True": r"allow_pickle\s*=\s*True",
    "safe_mode=False": r"safe_mode\s*=\s*False",
    "yaml.load(": r"yaml\.(unsafe_)?load\(",  # yaml.safe_load only
    "torch.load(": r"torch\.load\(",
}


def _sources() -> list[Path]:
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 30  # the whole package, not an empty glob
    return files


@pytest.mark.parametrize("name", list(UNSAFE))
def test_no_unsafe_deserialisation_in_src(name):
    pattern = re.compile(UNSAFE[name], re.MULTILINE)
    hits = [
        f"{path.relative_to(SRC)}:{text[: match.start()].count(chr(10)) + 1}"
        for path in _sources()
        for text in [path.read_text()]
        for match in pattern.finditer(text)
    ]
    assert hits == [], f"{name} in {hits}"


def test_the_unsafe_patterns_do_catch_what_they_look_for():
    samples = {
        "import pickle": "import pickle\n",
        "joblib": "x = joblib.load(p)",
        "eval(": "y = eval(text)",
        "exec(": "exec(code)",
        "allow_pickle=True": "np.load(p, allow_pickle=True)",
        "safe_mode=False": "load_model(p, safe_mode=False)",
        "yaml.load(": "yaml.load(t)",
        "torch.load(": "torch.load(p)",
    }
    for name, sample in samples.items():
        assert re.search(UNSAFE[name], sample, re.MULTILINE), name
    assert not re.search(UNSAFE["eval("], "model.evaluate(x); literal_eval(s)")


def test_every_keras_load_model_call_passes_safe_mode_true():
    keras_loads = []
    for path in _sources():
        text = path.read_text()
        for match in re.finditer(r"keras\.(?:models|saving)\.load_model\(([^)]*)\)", text):
            keras_loads.append((path.relative_to(SRC), match.group(1)))
    # voxpop.models.load_model, which export's checkpoint reader and the trial restore call
    assert [str(path) for path, _ in keras_loads] == ["models/families.py"], keras_loads
    unsafe = [(str(path), args) for path, args in keras_loads if "safe_mode=True" not in args]
    assert unsafe == []
    # and nothing imports load_model bare, where the grep above would not see it
    assert not [
        p for p in _sources() if re.search(r"from keras\S* import .*load_model", p.read_text())
    ]


# -- the embedded Ray --------------------------------------------------------------------------
def test_embedded_ray_has_no_dashboard_and_keeps_token_authentication():
    import ray
    from ray._private.authentication.authentication_utils import is_token_auth_enabled

    from voxpop.tune_spaces.cluster import start_ray, stop_ray

    assert start_ray(num_cpus=1)
    try:
        processes = psutil.Process().children(recursive=True)
        listening = {
            conn.laddr.port
            for proc in processes
            for conn in _connections(proc)
            if conn.status == psutil.CONN_LISTEN
        }
        assert listening and 8265 not in listening  # Ray's dashboard port
        # Ray still runs its head process for usage stats, without the web frontend (and
        # `--minimal` too where ray[default]'s packages are absent)
        commands = [" ".join(_cmdline(proc)) for proc in processes]
        heads = [command for command in commands if "dashboard/dashboard.py" in command]
        assert len(heads) == 1, commands
        assert "--disable-frontend" in heads[0], heads
        assert not ray._private.worker.global_worker.node.address_info.get("webui_url")
        assert is_token_auth_enabled()
    finally:
        stop_ray()


def _connections(proc: psutil.Process):
    try:
        return proc.net_connections(kind="inet")
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def test_stopping_the_embedded_ray_restores_the_loopback_setting(monkeypatch):
    # Left set, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 would make every later `ray start` child of
    # this process refuse a second node (it broke the multi-node tests after an embedded run).
    from ray._private import ray_constants

    from voxpop.tune_spaces.cluster import LOOPBACK_ONLY_ENV, start_ray, stop_ray

    monkeypatch.delenv(LOOPBACK_ONLY_ENV, raising=False)
    before = ray_constants.ENABLE_RAY_CLUSTER
    assert start_ray(num_cpus=1)
    try:
        assert os.environ[LOOPBACK_ONLY_ENV] == "0"
        assert ray_constants.ENABLE_RAY_CLUSTER is False
    finally:
        stop_ray()
    assert LOOPBACK_ONLY_ENV not in os.environ
    assert ray_constants.ENABLE_RAY_CLUSTER == before
