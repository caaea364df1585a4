"""User search spaces from a YAML or JSON file, in a small syntax that needs no Python.

A space file is a mapping of config keys. A plain value is a constant; a one-key mapping is a
sampler. `family` is required (a constant or a `choice`)::

    family: stacked_bilstm
    units: {choice: [32, 64]}
    learning_rate: {loguniform: [1.0e-4, 3.0e-3]}
    head_dropout: {uniform: [0.1, 0.5]}
    num_layers: {randint: [2, 3]}       # integers, both ends included
    batch_size: {qrandint: [32, 128, 32]} # low, high (included), step

`voxpop spaces show NAME` prints any named space in this same syntax, ready to copy into a file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

from voxpop.data.errors import VoxpopError

SPACE_FILE_SUFFIXES = (".yaml", ".yml", ".json")


def _numbers(kind: str, args, count: int, *, integers: bool = False) -> list:
    if (
        not isinstance(args, list)
        or len(args) != count
        or not all(isinstance(a, int | float) and not isinstance(a, bool) for a in args)
    ):
        raise ValueError(f"{kind} takes a list of {count} numbers, got {args!r}")
    if not all(math.isfinite(a) for a in args):
        raise ValueError(f"{kind} takes finite numbers, got {args!r}")
    if integers:
        if not all(float(a).is_integer() for a in args):
            raise ValueError(f"{kind} takes integers, got {args!r}")
        args = [int(a) for a in args]
    return args


def _ordered(kind: str, low, high, *, equal: bool) -> None:
    if low > high or (low == high and not equal):
        raise ValueError(
            f"{kind} needs low {'<=' if equal else '<'} high, got [{low}, {high}]"
            + (f" (write [{high}, {low}])" if low > high else " (use a constant)")
        )


def _choice(args):
    from ray import tune

    if not isinstance(args, list) or not args:
        raise ValueError(f"choice takes a non-empty list of values, got {args!r}")
    return tune.choice(args)


def _uniform(args):
    from ray import tune

    low, high = _numbers("uniform", args, 2)
    _ordered("uniform", low, high, equal=False)
    return tune.uniform(low, high)


def _loguniform(args):
    from ray import tune

    low, high = _numbers("loguniform", args, 2)
    if low <= 0:
        raise ValueError(f"loguniform needs a positive lower bound, got {low}")
    _ordered("loguniform", low, high, equal=False)
    return tune.loguniform(low, high)


def _randint(args):
    from ray import tune

    low, high = _numbers("randint", args, 2, integers=True)
    _ordered("randint", low, high, equal=True)
    return tune.randint(low, high + 1)  # Ray's upper bound is exclusive; ours is included


def _qrandint(args):
    from ray import tune

    low, high, step = _numbers("qrandint", args, 3, integers=True)
    _ordered("qrandint", low, high, equal=True)
    if step < 1:
        raise ValueError(f"qrandint needs a step >= 1, got {step}")
    if -(-low // step) * step > high:
        raise ValueError(f"qrandint [{low}, {high}, {step}] holds no multiple of {step}")
    return tune.qrandint(low, high, step)


SAMPLERS: dict[str, Callable] = {
    "choice": _choice,
    "uniform": _uniform,
    "loguniform": _loguniform,
    "randint": _randint,
    "qrandint": _qrandint,
}


def spec_to_space(spec: dict, *, source: str) -> dict:
    """Turn the file syntax into a Ray Tune param space; errors name the file and the key."""
    if not isinstance(spec, dict) or not spec:
        raise VoxpopError(f"{source}: a space file must be a non-empty mapping of config keys")
    if "family" not in spec:
        raise VoxpopError(f"{source}: key 'family' is required (e.g. family: bilstm)")
    return {str(key): _value(value, key=key, source=source) for key, value in spec.items()}


def _value(value, *, key, source: str):
    if not isinstance(value, dict):
        return value
    if len(value) != 1 or next(iter(value)) not in SAMPLERS:
        raise VoxpopError(
            f"{source}: key {key!r}: a sampler is a one-key mapping, one of "
            f"{', '.join(SAMPLERS)} (got {value!r})"
        )
    kind, args = next(iter(value.items()))
    try:
        return SAMPLERS[kind](args)
    except ValueError as err:
        raise VoxpopError(f"{source}: key {key!r}: {err}") from None


def load_space_file(path: str | Path) -> dict:
    """Read a YAML/JSON space file (syntax in this module's docstring) as a Ray Tune param space."""
    import yaml

    from voxpop.data.io import read_text_file

    path = Path(path)
    if path.suffix.lower() not in SPACE_FILE_SUFFIXES:
        raise VoxpopError(f"{path}: a space file ends in {', '.join(SPACE_FILE_SUFFIXES)}")
    text = read_text_file(path, what="space file")
    try:
        spec = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        first_line = str(err).splitlines()[0]
        raise VoxpopError(f"{path}: not valid {path.suffix[1:].upper()}: {first_line}") from None
    except RecursionError:
        raise VoxpopError(f"{path}: nested too deeply") from None
    return spec_to_space(spec, source=str(path))


def space_to_spec(space: dict) -> dict:
    """The inverse of `spec_to_space`: a param space written in the file syntax (for `show`)."""
    return {key: _spec_value(value) for key, value in space.items()}


def _spec_value(value):
    from ray.tune.search import sample

    if isinstance(value, sample.Categorical):
        return {"choice": list(value.categories)}
    if isinstance(value, sample.Integer):
        quantized = value.get_sampler()
        if isinstance(quantized, sample.Quantized):
            return {"qrandint": [value.lower, value.upper, quantized.q]}
        return {"randint": [value.lower, value.upper - 1]}
    if isinstance(value, sample.Float):
        kind = "loguniform" if isinstance(value.get_sampler(), sample.LogUniform) else "uniform"
        return {kind: [value.lower, value.upper]}
    return value
