"""Named search spaces: each model family's default space, and `mixed` (the family is sampled too).

A family's default space is part of its registration (`voxpop.models.families`), written in the
space-file syntax (`voxpop.tune_spaces.space_file`); `get_space` turns it into a Ray Tune param
space: a dict of `ray.tune` samplers (and constants) that always holds `family`. Keys other than
`family` are the model's and the training's config keys (`voxpop.models.build` /
`voxpop.models.training.fit`); anything a space leaves out takes
`voxpop.models.default_config(family)`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from voxpop.data.errors import VoxpopError

MIXED = "mixed"


@dataclass(frozen=True)
class NamedSpace:
    """A named space in the space-file syntax, with the line `voxpop spaces` shows for it."""

    summary: str
    spec: dict


@functools.cache
def _named_spaces() -> dict[str, NamedSpace]:
    from voxpop.models.families import COMMON_SPACE, FAMILIES

    spaces = {
        name: NamedSpace(spec.summary, {"family": name, **spec.space})
        for name, spec in FAMILIES.items()
    }
    # Only keys every family accepts; the family-specific ones keep their defaults.
    mixed = [name for name, spec in FAMILIES.items() if spec.mixed]
    spaces[MIXED] = NamedSpace(
        f"The family itself is sampled ({', '.join(mixed)}).",
        {"family": {"choice": mixed}, **COMMON_SPACE},
    )
    return spaces


class _Spaces(Mapping):
    """Space name -> NamedSpace, read from the model family registry on first use: the registry
    needs Keras, which importing this package (for `voxpop --help`, or the tune command's
    defaults) must not load."""

    def __getitem__(self, name: str) -> NamedSpace:
        return _named_spaces()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(_named_spaces())

    def __len__(self) -> int:
        return len(_named_spaces())


SPACES: Mapping[str, NamedSpace] = _Spaces()


def describe(name: str) -> str:
    """The one-line description of a named space."""
    return SPACES[name].summary


def get_space(name: str) -> dict:
    """The param space called `name`; an unknown name is a VoxpopError listing the valid ones."""
    from voxpop.tune_spaces.space_file import spec_to_space

    if name not in SPACES:
        raise VoxpopError(
            f"unknown search space {name!r} (valid: {', '.join(SPACES)}, "
            "or a path to a .yaml/.yml/.json space file)"
        )
    return spec_to_space(SPACES[name].spec, source=f"space {name}")


def resolve_space(ref: str) -> tuple[str, dict]:
    """`(name, param space)` for a registry name or a YAML/JSON space file (named by its stem)."""
    from voxpop.tune_spaces.space_file import SPACE_FILE_SUFFIXES, load_space_file

    if ref.lower().endswith(SPACE_FILE_SUFFIXES):
        path = Path(ref).expanduser().resolve()
        return path.stem, load_space_file(path)
    return ref, get_space(ref)
