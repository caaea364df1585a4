"""The driver settles the spaces' word vectors before Ray starts (`tune_spaces.embeddings`): the
`embeddings` key as a constant or a choice (so trials differ), `--embeddings` as the default of
token families, sources in canonical form, and the embedding's width following the vectors."""

from __future__ import annotations

import pytest
from ray.tune.search import sample

from voxpop.data.errors import VoxpopError
from voxpop.tune_spaces.embeddings import sources, with_embeddings
from voxpop.tune_spaces.space_file import spec_to_space
from voxpop.tune_spaces.spaces import get_space


def _vectors(path, dim: int):
    path.write_text("the " + " ".join(["0.5"] * dim) + "\n")
    return path


def test_a_choice_of_vectors_lets_trials_differ_and_the_default_fills_the_other_spaces(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    _vectors(tmp_path / "small.txt", 8)
    _vectors(tmp_path / "other.vec", 6)
    choice = spec_to_space(
        {
            "family": "bigram",
            "embed_dim": {"choice": [16, 32]},
            "embeddings": {"choice": ["none", "small.txt"]},
        },
        source="choice",
    )
    spaces = {"choice": choice, "cnn": get_space("cnn"), "tfidf": get_space("tfidf")}

    settled = with_embeddings(spaces, default="other.vec", freeze=True)

    # the choice keeps "none" and names the file by its absolute path; embed_dim stays sampled
    assert settled["choice"]["embeddings"].categories == ["none", str(tmp_path / "small.txt")]
    assert isinstance(settled["choice"]["embed_dim"], sample.Categorical)
    assert "freeze_embeddings" not in settled["choice"]
    # the named cnn space takes --embeddings; every trial has vectors, so embed_dim is dropped
    assert settled["cnn"]["embeddings"] == str(tmp_path / "other.vec")
    assert settled["cnn"]["freeze_embeddings"] is True and "embed_dim" not in settled["cnn"]
    assert "embeddings" not in settled["tfidf"]  # no token embedding to start
    assert sources(settled) == [str(tmp_path / "small.txt"), str(tmp_path / "other.vec")]
    assert "embed_dim" in spaces["cnn"]  # the caller's spaces are left as they were


def test_spaces_whose_vectors_cannot_be_used_are_refused(tmp_path):
    fifty = str(_vectors(tmp_path / "fifty.txt", 50))
    fixed = spec_to_space({"family": "cnn", "embed_dim": 16, "embeddings": fifty}, source="f")
    with pytest.raises(VoxpopError, match="space f: embed_dim 16 is fixed, but .* has 50-dim"):
        with_embeddings({"f": fixed}, default=None, freeze=False)
    matching = spec_to_space({"family": "cnn", "embed_dim": 50, "embeddings": fifty}, source="m")
    assert with_embeddings({"m": matching}, default=None, freeze=False)["m"]["embed_dim"] == 50
    missing = spec_to_space(
        {"family": "cnn", "embeddings": {"choice": ["none", "absent.txt"]}}, source="x"
    )
    with pytest.raises(VoxpopError, match="space x: key 'embeddings': absent.txt: no such file"):
        with_embeddings({"x": missing}, default=None, freeze=False)
    sampled = spec_to_space({"family": "cnn", "embeddings": {"uniform": [0, 1]}}, source="u")
    with pytest.raises(VoxpopError, match="takes a name, a file, none or a choice"):
        with_embeddings({"u": sampled}, default=None, freeze=False)
