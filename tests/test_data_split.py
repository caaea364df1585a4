"""split_rows: stratified, seeded, order-independent with ids; Split JSON round trip."""

from __future__ import annotations

import numpy as np
import pytest

from voxpop.data import Split, VoxpopError, split_rows


@pytest.fixture(scope="module")
def tweet_labels(tweets_sample):
    return tweets_sample["label"].to_numpy()


def test_split_is_a_stratified_partition(tweet_labels):
    labels = tweet_labels
    split = split_rows(labels, val_size=0.2, test_size=0.1, seed=3)
    everything = np.concatenate([split.train, split.val, split.test])
    assert sorted(everything.tolist()) == list(range(len(labels)))  # disjoint and complete
    for part, size in ((split.val, 0.2), (split.test, 0.1)):
        assert part.dtype == np.int64 and np.all(np.diff(part) > 0)
        for cls in np.unique(labels):
            expected = round((labels == cls).sum() * size)
            assert (labels[part] == cls).sum() == expected


def test_same_seed_same_split_other_seed_other_split(tweet_labels):
    labels = tweet_labels
    first, again, other = (split_rows(labels, seed=s) for s in (1, 1, 2))
    assert all(
        np.array_equal(getattr(first, k), getattr(again, k)) for k in ("train", "val", "test")
    )
    assert not np.array_equal(first.val, other.val)


def test_with_ids_membership_does_not_depend_on_row_order():
    rng = np.random.default_rng(0)
    labels = rng.choice(["a", "b", "c"], size=300)
    ids = np.array([f"id{i}" for i in range(300)])
    perm = rng.permutation(300)
    split = split_rows(labels, ids=ids, seed=5)
    shuffled = split_rows(labels[perm], ids=ids[perm], seed=5)
    for name in ("train", "val", "test"):
        assert set(ids[getattr(split, name)]) == set(ids[perm][getattr(shuffled, name)])


def test_a_class_too_small_is_named_with_its_row_count():
    labels = ["a"] * 50 + ["b"] * 2
    with pytest.raises(
        VoxpopError,
        match=r"class 'b' has only 2 row\(s\); val_size=0.15 and test_size=0.15 need at least 3",
    ):
        split_rows(labels)
    assert len(split_rows(labels, val_size=0.15, test_size=0).train) == 50 - 8 + 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"val_size": 1.2}, r"val_size must be in \[0, 1\)"),
        ({"val_size": 0.6, "test_size": 0.5}, r"val_size \+ test_size must be below 1"),
    ],
)
def test_bad_sizes_are_refused(kwargs, message):
    with pytest.raises(VoxpopError, match=message):
        split_rows(["a", "b"] * 20, **kwargs)


def test_single_class_is_refused():
    with pytest.raises(VoxpopError, match=r"labels have 1 class\(es\) \(x\)"):
        split_rows(["x"] * 10)


def test_split_json_round_trip():
    split = split_rows(["a", "b"] * 20, seed=0)
    back = Split.from_json(split.to_json())
    assert all(
        np.array_equal(getattr(split, k), getattr(back, k)) and getattr(back, k).dtype == np.int64
        for k in ("train", "val", "test")
    )
    with pytest.raises(VoxpopError, match="split: key 'test' missing"):
        Split.from_json({"train": [], "val": []})
