"""Named search spaces, the space-file syntax, and `voxpop spaces` (no Ray cluster needed)."""

from __future__ import annotations

import json

import pytest
from ray.tune.search import sample
from ray.tune.search.variant_generator import generate_variants
from typer.testing import CliRunner

from voxpop.data.errors import VoxpopError
from voxpop.serving_cli.app import app
from voxpop.tune_spaces import SPACES, get_space, load_space_file, resolve_space
from voxpop.tune_spaces.space_file import space_to_spec, spec_to_space

runner = CliRunner()


def _sampled(space: dict, n: int = 20) -> list[dict]:
    return [next(generate_variants(space))[1] for _ in range(n)]


@pytest.mark.parametrize("name", list(SPACES))
def test_every_named_space_builds_models_of_its_family(name):
    """Each sample of each space is a config voxpop.models accepts (unknown keys are errors)."""
    from voxpop.models.families import FAMILIES, TRAINING_KEYS, default_config

    for config in _sampled(get_space(name), n=5):
        assert config["family"] in FAMILIES
        unknown = set(config) - set(default_config(config["family"])) - TRAINING_KEYS
        assert not unknown, f"{name}: keys the model family rejects: {unknown}"


def test_mixed_samples_several_families_including_a_gru_one():
    # GRU belongs in `mixed` because voxpop.export.gru exports it as fused ONNX GRU ops
    # (tests/test_models_export.py proves that for every family `mixed` samples).
    choices = get_space("mixed")["family"].categories
    assert "bigru" in choices
    families = {config["family"] for config in _sampled(get_space("mixed"), n=60)}
    assert len(families) >= 4 and families <= set(choices)


def test_unknown_space_lists_the_valid_names():
    with pytest.raises(VoxpopError, match="unknown search space 'nope'.*bilstm, stacked_bilstm"):
        get_space("nope")


def test_space_file_yaml_round_trips_through_show_syntax(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        "family: stacked_bilstm\n"
        "units: {choice: [32, 64]}\n"
        "learning_rate: {loguniform: [1.0e-4, 3.0e-3]}\n"
        "head_dropout: {uniform: [0.1, 0.5]}\n"
        "num_layers: {randint: [2, 3]}\n"
        "batch_size: {qrandint: [32, 128, 32]}\n"
    )
    name, space = resolve_space(str(path))
    assert name == "mine"
    assert isinstance(space["units"], sample.Categorical)
    configs = _sampled(space, n=200)
    assert {c["num_layers"] for c in configs} == {2, 3}  # both ends included
    assert {c["units"] for c in configs} == {32, 64}
    assert all(1e-4 <= c["learning_rate"] <= 3e-3 for c in configs)
    assert all(c["batch_size"] % 32 == 0 and 32 <= c["batch_size"] <= 128 for c in configs)
    assert space_to_spec(space) == {
        "family": "stacked_bilstm",
        "units": {"choice": [32, 64]},
        "learning_rate": {"loguniform": [1e-4, 3e-3]},
        "head_dropout": {"uniform": [0.1, 0.5]},
        "num_layers": {"randint": [2, 3]},
        "batch_size": {"qrandint": [32, 128, 32]},
    }


def test_space_file_json_is_read(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"family": {"choice": ["cnn", "lstm"]}, "embed_dim": 32}))
    configs = _sampled(load_space_file(path), n=40)
    assert {c["family"] for c in configs} == {"cnn", "lstm"}
    assert {c["embed_dim"] for c in configs} == {32}


@pytest.mark.parametrize(
    "text, message",
    [
        ("units: 3\n", "key 'family' is required"),
        (
            "family: cnn\nfilters: {gaussian: [1, 2]}\n",
            "key 'filters'.*choice, uniform, loguniform",
        ),
        ("family: cnn\nlearning_rate: {loguniform: [0, 1]}\n", "positive lower bound"),
        ("family: cnn\nfilters: {randint: [1]}\n", "randint takes a list of 2 numbers"),
        ("family: [unclosed\n", "not valid YAML"),
        ("- a list\n", "non-empty mapping"),
    ],
)
def test_bad_space_files_name_the_file_and_problem(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(VoxpopError, match=message) as err:
        load_space_file(path)
    assert str(path) in str(err.value)


def test_spec_to_space_keeps_constants():
    space = spec_to_space({"family": "cnn", "filters": 16}, source="x")
    assert space == {"family": "cnn", "filters": 16}


def test_cli_spaces_lists_every_name_with_a_description():
    for args in (["spaces"], ["spaces", "list"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0
        lines = result.output.strip().splitlines()
        assert [line.split()[0] for line in lines] == list(SPACES)
        assert all(len(line.split()) > 3 for line in lines)


def test_cli_spaces_show_prints_keys_samplers_and_ranges():
    result = runner.invoke(app, ["spaces", "show", "transformer"])
    assert result.exit_code == 0
    assert "family: transformer" in result.output
    assert "num_blocks: {randint: [1, 2]}" in result.output
    assert "learning_rate: {loguniform: [0.0003, 0.003]}" in result.output


def test_cli_spaces_show_output_is_a_valid_space_file(tmp_path):
    result = runner.invoke(app, ["spaces", "show", "cnn"])
    path = tmp_path / "copy.yaml"
    path.write_text(result.output)
    assert space_to_spec(load_space_file(path)) == space_to_spec(get_space("cnn"))


def test_cli_spaces_show_unknown_name_exits_2_with_valid_names():
    result = runner.invoke(app, ["spaces", "show", "nope"])
    assert result.exit_code == 2
    assert "error: unknown search space 'nope'" in result.output
    assert "mixed" in result.output


def test_cli_spaces_show_checks_a_space_file_as_tune_does(tmp_path):
    """A float sampler for an integer key is refused by `show` with tune's own message."""
    path = tmp_path / "space.yaml"
    path.write_text("family: bilstm\nunits: {uniform: [16, 64]}\n")
    result = runner.invoke(app, ["spaces", "show", str(path)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and "units is an integer" in result.output
    path.write_text("family: bilstm\nunits: {randint: [16, 64]}\n")
    assert runner.invoke(app, ["spaces", "show", str(path)]).exit_code == 0
