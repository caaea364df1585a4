"""Pretrained word vectors in a tuning run's spaces (`--embeddings`, space keys `embeddings` and
`freeze_embeddings`), settled in the driver before Ray starts.

Every source a space names is checked to exist and written in its canonical form (a name, or the
file's absolute path: the trials run elsewhere and look the vectors up by it); `--embeddings` and
`--freeze-embeddings` become the keys' constants in each space of token families that sets none.
The vectors' width is the embedding's: a sampled `embed_dim` is dropped from a space whose every
trial has vectors, and a fixed one that differs is refused. The driver then matches each source
to the vocabulary once (`voxpop.data.vectors.match_vectors`, in `prepare.py`).
"""

from __future__ import annotations

from voxpop.data.errors import VoxpopError
from voxpop.data.options import NO_EMBEDDINGS
from voxpop.data.vectors import is_source, resolve_source, source_dim

KEY, FREEZE_KEY = "embeddings", "freeze_embeddings"


def with_embeddings(
    spaces: dict[str, dict], *, default: str | None, freeze: bool
) -> dict[str, dict]:
    """The spaces with their vector sources settled (see the module's docstring)."""
    if freeze and default is None:
        raise VoxpopError("--freeze-embeddings needs --embeddings (the vectors to keep fixed)")
    default = None if default is None else resolve_source(default)
    settled = {
        name: _settled(name, space, default=default, freeze=freeze)
        for name, space in spaces.items()
    }
    if default is not None and not any(KEY in space for space in settled.values()):
        raise VoxpopError(
            f"--embeddings: no family of the spaces {', '.join(spaces)} has a token "
            "embedding to start from word vectors"
        )
    return settled


def sources(spaces: dict[str, dict]) -> list[str]:
    """Every vector source the spaces' trials may use, once each, in order."""
    found = [value for space in spaces.values() for value in _values(space.get(KEY))]
    return list(dict.fromkeys(value for value in found if is_source(value)))


def _settled(name: str, space: dict, *, default: str | None, freeze: bool) -> dict:
    space = dict(space)
    if KEY in space:
        space[KEY] = _mapped(name, space[KEY], lambda value: _canonical(name, value))
    elif default is not None and _reads_tokens(space):
        space[KEY] = default
        space.setdefault(FREEZE_KEY, freeze)
    if KEY in space:
        _fit_width(name, space)
    return space


def _canonical(space: str, value):
    if not is_source(value):
        return value
    return resolve_source(value, what=f"space {space}: key {KEY!r}")


def _fit_width(name: str, space: dict) -> None:
    from ray.tune.search import sample

    values = _values(space[KEY])
    widths = {value: source_dim(value) for value in values if is_source(value)}
    width = space.get("embed_dim")
    if isinstance(width, sample.Domain):
        if all(is_source(value) for value in values):
            del space["embed_dim"]  # every trial's width is its vectors'
        return
    for source, dim in widths.items():
        if width is not None and width != dim:
            raise VoxpopError(
                f"space {name}: embed_dim {width} is fixed, but {source} has {dim}-dim vectors; "
                f"the embedding's width follows the vectors (leave embed_dim out, or set it to "
                f"{dim})"
            )


def _reads_tokens(space: dict) -> bool:
    from voxpop.models import FAMILIES

    return any(
        FAMILIES[family].reads == "tokens"
        for family in _values(space.get("family"))
        if family in FAMILIES
    )


def _values(value) -> list:
    """The values a constant or a choice can give."""
    from ray.tune.search import sample

    return list(value.categories) if isinstance(value, sample.Categorical) else [value]


def _mapped(name: str, value, function):
    """A constant or a choice with `function` applied to each of its values."""
    from ray import tune
    from ray.tune.search import sample

    if isinstance(value, sample.Categorical):
        return tune.choice([function(item) for item in value.categories])
    if isinstance(value, sample.Domain):
        raise VoxpopError(
            f"space {name}: key {KEY!r} takes a name, a file, {NO_EMBEDDINGS} or a choice of them"
        )
    return function(value)
