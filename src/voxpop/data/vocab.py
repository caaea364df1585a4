"""Vocabulary: token -> id with PAD=0 and OOV=1, built from training token lists."""

from __future__ import annotations

from collections import Counter

import numpy as np

from voxpop.data.errors import VoxpopError

PAD, OOV = 0, 1


class Vocabulary:
    """Token ids by descending training frequency (ties by token), after PAD=0 and OOV=1."""

    def __init__(self, tokens: list[str]):
        self.tokens = list(tokens)
        self._ids = {token: i + 2 for i, token in enumerate(self.tokens)}

    @classmethod
    def build(cls, token_lists, *, max_tokens: int, min_freq: int) -> Vocabulary:
        """Keep tokens seen at least `min_freq` times; `max_tokens` counts PAD and OOV too."""
        if max_tokens < 3:
            raise VoxpopError(f"max_tokens must be >= 3 (PAD, OOV and one token; got {max_tokens})")
        if min_freq < 1:
            raise VoxpopError(f"min_freq must be >= 1 (got {min_freq})")
        counts = Counter(token for tokens in token_lists for token in tokens)
        kept = sorted((t for t, n in counts.items() if n >= min_freq), key=lambda t: (-counts[t], t))
        return cls(kept[: max_tokens - 2])

    def __len__(self) -> int:
        """Vocabulary size including PAD and OOV."""
        return len(self.tokens) + 2

    def ids(self, tokens: list[str]) -> list[int]:
        get = self._ids.get
        return [get(token, OOV) for token in tokens]


def pad_sequences(sequences: list[list[int]], *, max_len: int, padding: str,
                  truncating: str) -> np.ndarray:
    """int32 [n, max_len]: PAD on the `padding` side, tokens cut on the `truncating` side."""
    out = np.full((len(sequences), max_len), PAD, dtype=np.int32)
    for row, seq in enumerate(sequences):
        if not seq:
            continue
        seq = seq[:max_len] if truncating == "post" else seq[-max_len:]
        if padding == "post":
            out[row, : len(seq)] = seq
        else:
            out[row, max_len - len(seq):] = seq
    return out
