"""A search space checked whole in the driver, before Ray starts or any file is written.

Every value a space can give a trial is checked against what the family (or training) expects: the
family exists, every key is one a family or training knows, a key whose default is an integer gets
integers (a `uniform` for `units` is refused, not left to crash a trial), a boolean key booleans,
a number key numbers (finite), and the named choices of training (loss, imbalance, optimizer,
schedule, solver) valid names. Sampler bounds are checked where the file syntax is read
(`space_file`). Named spaces pass the same check.
"""

from __future__ import annotations

import math

from voxpop.data.errors import VoxpopError


def check_space(name: str, space: dict) -> None:
    """Raise a VoxpopError naming the space, the key and the value that no trial could use."""
    from voxpop.models import FAMILIES, default_config
    from voxpop.tune_spaces.trainable import FAULT_KEY  # a test hook, no model or training key

    configs = []
    for family in _values(space.get("family")):
        if family not in FAMILIES:
            raise VoxpopError(
                f"space {name}: model family {family!r} is not valid (valid: {', '.join(FAMILIES)})"
            )
        for encoder in _values(space.get("encoder")):
            try:
                configs.append(default_config(family, encoder=encoder))
            except ValueError as err:
                raise VoxpopError(f"space {name}: {err}") from None
    for key, value in space.items():
        if key not in ("family", FAULT_KEY):
            _check_key(name, key, value, configs)


def families_of(space: dict) -> list:
    """The model families a (checked) space can sample."""
    return _values(space.get("family"))


def _values(value) -> list:
    """The values a constant or a choice can give (ranges are checked by their type)."""
    from ray.tune.search import sample

    if isinstance(value, sample.Categorical):
        return list(value.categories)
    return [value]


def _check_key(space: str, key: str, value, configs: list[dict]) -> None:
    from ray.tune.search import sample

    from voxpop.models import FAMILIES
    from voxpop.models.training import TRAINING_DEFAULTS, training_config

    known = [config[key] for config in configs if key in config]
    if key in TRAINING_DEFAULTS:
        known.append(TRAINING_DEFAULTS[key])
    where = f"space {space}: key {key!r}"
    if not known:
        users = [f for f in FAMILIES if key in FAMILIES[f].defaults]
        if users:
            raise VoxpopError(
                f"{where} is used by none of this space's families (it is a key of "
                f"{', '.join(users)}), so sampling it would change nothing"
            )
        valid = sorted(set().union(*configs, TRAINING_DEFAULTS))
        raise VoxpopError(f"{where} is not a model or training key (valid: {', '.join(valid)})")
    if isinstance(value, sample.Float | sample.Integer):
        problems = [_sampler_problem(key, value, default) for default in known]
    else:
        problems = []
        for choice in _values(value):
            problems = [_problem(key, choice, default) for default in known]
            if key in TRAINING_DEFAULTS and None in problems:
                try:
                    training_config({key: choice})
                except ValueError as err:
                    problems = [str(err)]
            if None not in problems:
                break
    if None not in problems:
        raise VoxpopError(f"{where}: {problems[0]}")


def _sampler_problem(key: str, value, default) -> str | None:
    """Why the sampler `value` cannot stand where `default` does (None: it can)."""
    from ray.tune.search import sample

    if default is None:
        return None
    if isinstance(value, sample.Float):
        if _is_int(default) or (isinstance(default, list) and all(map(_is_int, default))):
            return (
                f"{_sampler(value)} gives fractional numbers, but {key} is an integer "
                f"(default {default!r}): use randint or qrandint"
            )
        if not _is_number(default):
            return f"{_sampler(value)} gives numbers, but {key} is not one (default {default!r})"
    if isinstance(value, sample.Integer) and not (
        _is_number(default) or (isinstance(default, list) and all(map(_is_int, default)))
    ):
        return f"{_sampler(value)} gives integers, but {key} is not one (default {default!r})"
    return None


def _problem(key: str, value, default) -> str | None:
    """Why `value` cannot stand where `default` does (None: it can)."""
    if _is_number(value) and not math.isfinite(value):
        return f"{value!r} is not a finite number"
    if default is None or value is None:
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else f"{value!r} is not true or false"
    if _is_int(default):
        return None if _is_int(value) else f"{value!r} is not an integer (default {default!r})"
    if _is_number(default):
        return None if _is_number(value) else f"{value!r} is not a number (default {default!r})"
    if isinstance(default, list):  # e.g. head_units [64], kernel_sizes [2, 3, 4]; units of stacked
        items = value if isinstance(value, list) else [value]
        kinds = {type(item) for item in default} or {int}
        if all(any(_same_kind(item, kind) for kind in kinds) for item in items):
            return None
        return f"{value!r} is not a list like the default {default!r}"
    if isinstance(default, str):
        return None if isinstance(value, str) else f"{value!r} is not a name (default {default!r})"
    return None


def _same_kind(item, kind: type) -> bool:
    if kind is int:
        return _is_int(item)
    if kind is float:
        return _is_number(item)
    return isinstance(item, kind)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _sampler(value) -> str:
    from voxpop.tune_spaces.space_file import space_to_spec

    return str(space_to_spec({"key": value})["key"])
