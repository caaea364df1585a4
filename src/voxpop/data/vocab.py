"""Vocabulary: token -> id with PAD=0 and OOV=1, built from training token lists."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from voxpop.data.errors import VoxpopError

PAD, OOV = 0, 1


class Vocabulary:
    """Token ids by descending training frequency (ties by token), after PAD=0 and OOV=1."""

    def __init__(self, tokens: list[str]):
        self.tokens = list(tokens)
        self._index = pd.Index(self.tokens, dtype=object)  # hash lookups in C for many tokens

    @classmethod
    def build(cls, tokens, *, max_tokens: int, min_freq: int) -> Vocabulary:
        """From all training tokens (flat): keep those seen at least `min_freq` times, at most
        `max_tokens` ids counting PAD and OOV."""
        if max_tokens < 3:
            raise VoxpopError(f"max_tokens must be >= 3 (PAD, OOV and one token; got {max_tokens})")
        if min_freq < 1:
            raise VoxpopError(f"min_freq must be >= 1 (got {min_freq})")
        counts = Counter(tokens)
        kept = sorted(
            (t for t, n in counts.items() if n >= min_freq), key=lambda t: (-counts[t], t)
        )
        return cls(kept[: max_tokens - 2])

    def __len__(self) -> int:
        """Vocabulary size including PAD and OOV."""
        return len(self.tokens) + 2

    def ids(self, tokens: list[str]) -> np.ndarray:
        """int32 id of each token (OOV for unknown ones)."""
        # An object Index of the tokens: from a plain array, pandas would first copy them into
        # its string dtype (measured 5x slower).
        positions = self._index.get_indexer(pd.Index(tokens, dtype=object))
        return np.where(positions < 0, OOV, positions + 2).astype(np.int32)


def pad_sequences(
    ids: np.ndarray, offsets: np.ndarray, *, max_len: int, padding: str, truncating: str
) -> np.ndarray:
    """int32 [n, max_len] from flat ids where row i is ids[offsets[i]:offsets[i + 1]]:
    PAD on the `padding` side, tokens cut on the `truncating` side ("pre" or "post")."""
    lengths = np.diff(offsets)
    kept = np.minimum(lengths, max_len)
    source_start = offsets[:-1] + (lengths - kept if truncating == "pre" else 0)
    target_start = max_len - kept if padding == "pre" else np.zeros_like(kept)
    # Position of each kept token inside its row's kept span.
    within = np.arange(kept.sum()) - np.repeat(np.cumsum(kept) - kept, kept)
    out = np.full((len(kept), max_len), PAD, dtype=np.int32)
    rows = np.repeat(np.arange(len(kept)), kept)
    out[rows, np.repeat(target_start, kept) + within] = ids[np.repeat(source_start, kept) + within]
    return out
