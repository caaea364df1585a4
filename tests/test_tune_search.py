"""Search algorithms as `run_tuning` builds them (no Ray cluster needed); the schedulers run for
real in test_tune_schedulers.py."""

from __future__ import annotations

from pathlib import Path

from ray.tune.search.variant_generator import generate_variants

from voxpop.tune_spaces import get_space
from voxpop.tune_spaces.runner import SEARCHES, TuneOptions
from voxpop.tune_spaces.trainable import trial_params

OPTIONS = TuneOptions(data=Path("unused.csv"), spaces=("cnn", "transformer"), samples=3, seed=1)


def _in_space(params: dict, space_name: str) -> bool:
    spec = get_space(space_name)
    return set(params) == set(spec) | {"seed"} and params["family"] == space_name


def test_optuna_suggests_configs_of_one_space_each():
    spaces = {name: get_space(name) for name in OPTIONS.spaces}
    param_space, search, num_samples = SEARCHES["optuna"](spaces, OPTIONS)
    assert param_space is None and num_samples == 6
    search.set_search_properties("val_macro_f1", "max", config={})
    seen = set()
    for i in range(12):
        space_name, params = trial_params(search.suggest(f"t{i}"))
        assert _in_space(params, space_name)
        assert 3e-4 <= params["learning_rate"] <= 3e-3
        assert params["batch_size"] in (32, 64, 128)
        seen.add(space_name)
    assert seen == {"cnn", "transformer"}
    if space_name == "transformer":
        assert params["num_blocks"] in (1, 2)


def test_random_search_gives_every_space_its_samples():
    spaces = {name: get_space(name) for name in OPTIONS.spaces}
    param_space, _, num_samples = SEARCHES["random"](spaces, OPTIONS)
    configs = [c for _ in range(num_samples) for _, c in generate_variants(param_space)]
    names = sorted(trial_params(c)[0] for c in configs)
    assert names == ["cnn"] * 3 + ["transformer"] * 3
    assert all(_in_space(*reversed(trial_params(c))) for c in configs)
