"""What a model family is, and the registry that `families.py` fills with `@family(...)`.

Apart from `families.py` so that `training.py` can ask a family for its closed-form solver while
`families.py` takes the training keys from `training.py`, without an import circle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# Layer names `build` gives and `fit` looks up in a linear model on the hashed n-grams.
GRAM_EMBEDDING, OUTPUT = "gram_embedding", "probs"
READS = {
    "tokens": ("tokens",),
    "grams": ("grams", "gram_weights"),
    # a frozen pretrained encoder's pooled embedding (voxpop.models.sentence)
    "sentence": ("sentence_embedding",),
}


@dataclass(frozen=True)
class Family:
    """One model family: its encoder and everything the other stages need to know about it.

    - `encoder`: for reads="tokens", (tokens, mask, embedded, config) -> [batch, dim]; for
      reads="grams", (grams, gram_weights, config, n_buckets, n_classes) -> [batch, dim]; for
      reads="sentence", (sentence_embedding, config) -> [batch, dim].
    - `defaults`: its own config keys and their defaults (beside the common ones).
    - `solver`: the closed-form solver that training key `solver: auto` fits a linear model of the
      family with (lbfgs, complement_nb), None for the epoch loop only.
    - `space`: its default search space in the space-file syntax (`voxpop.tune_spaces.space_file`,
      `{"choice": [...]}`, ...), without `family`; `summary`: one line on it for `voxpop spaces`.
    - `mixed`: whether the `mixed` space samples this family.
    - `padding_invariant`: whether its output is the same whatever padding a row has (masked
      steps only; no recurrence or position over the padding): export then lets its graph read
      the tokens cut to the batch's longest row (`voxpop.export.optimize.trim_token_padding`).
    """

    encoder: Callable
    defaults: dict
    summary: str
    space: dict
    uses_features: bool = False
    reads: str = "tokens"
    solver: str | None = None
    mixed: bool = False
    padding_invariant: bool = False

    @property
    def inputs(self) -> tuple[str, ...]:
        """The model's input names: its text input(s), then `features` if it takes them."""
        return READS[self.reads] + (("features",) if self.uses_features else ())


FAMILIES: dict[str, Family] = {}


def family(
    name: str,
    *,
    summary: str,
    space: dict,
    uses_features: bool = False,
    reads: str = "tokens",
    solver: str | None = None,
    mixed: bool = False,
    padding_invariant: bool = False,
    **defaults,
) -> Callable:
    """Register an encoder function as model family `name` with its own config defaults (the
    other keywords: see `Family`)."""
    if reads not in READS:
        raise ValueError(
            f"family {name!r}: reads={reads!r} is not valid (valid: {', '.join(READS)})"
        )

    def register(encoder: Callable) -> Callable:
        FAMILIES[name] = Family(
            encoder=encoder,
            defaults=defaults,
            summary=summary,
            space=space,
            uses_features=uses_features,
            reads=reads,
            solver=solver,
            mixed=mixed,
            padding_invariant=padding_invariant,
        )
        return encoder

    return register
