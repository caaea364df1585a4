"""External label words onto bundle labels: by name ignoring case, or by --label-map; unmapped rows
are counted and listed, never dropped from the count."""

from __future__ import annotations

import numpy as np
import pytest

from voxpop.data.errors import VoxpopError
from voxpop.reports.labels import UNMAPPED, map_labels, parse_label_map

BUNDLE = ["negative", "neutral", "positive"]


def test_case_insensitive_names_map_and_unknown_rows_are_counted_and_listed():
    external = np.array(["Positive", "NEGATIVE", "meh", "positive", "", "meh"], dtype=object)
    mapping = map_labels(external, BUNDLE, rows=np.array([10, 11, 12, 13, 14, 15]))

    assert mapping.y_true.tolist() == [2, 0, UNMAPPED, 2, UNMAPPED, UNMAPPED]
    assert mapping.unmapped_counts == {"": 1, "meh": 2}
    assert mapping.unmapped_rows == [12, 14, 15]
    assert mapping.absent_classes == ["neutral"]
    summary = mapping.summary(len(external))
    assert (summary["n_rows"], summary["n_evaluated"], summary["n_unmapped"]) == (6, 3, 3)
    assert summary["mapping"] == {
        "NEGATIVE": "negative",
        "Positive": "positive",
        "positive": "positive",
    }


def test_inline_label_map_wins_over_names_and_keys_ignore_case():
    label_map = parse_label_map("fresh=positive, rotten=negative", bundle_labels=BUNDLE)
    assert label_map == {"fresh": "positive", "rotten": "negative"}
    mapping = map_labels(
        np.array(["FRESH", "rotten", "neutral", "sour"]), BUNDLE, label_map=label_map
    )
    assert mapping.y_true.tolist() == [2, 0, 1, UNMAPPED]
    assert mapping.unmapped_counts == {"sour": 1}
    assert mapping.absent_classes == []


@pytest.mark.parametrize(
    "suffix, content",
    [
        (".json", '{"joy": "positive", "anger": "negative"}'),
        (".txt", "# emotion words\njoy=positive\n\nanger = negative\n"),
    ],
)
def test_label_map_file_json_or_lines(tmp_path, suffix, content):
    path = tmp_path / f"map{suffix}"
    path.write_text(content, encoding="utf-8")
    assert parse_label_map(str(path), bundle_labels=BUNDLE) == {
        "joy": "positive",
        "anger": "negative",
    }


def test_label_map_errors_name_the_problem_and_the_valid_labels(tmp_path):
    with pytest.raises(
        VoxpopError,
        match=r"'happy' are not in the bundle \(bundle labels: "
        r"negative, neutral, positive\)",
    ):
        parse_label_map("joy=happy", bundle_labels=BUNDLE)
    with pytest.raises(VoxpopError, match=r"--label-map: entry 2 'anger' is not of the form"):
        parse_label_map("joy=positive,anger", bundle_labels=BUNDLE)
    bad = tmp_path / "map.json"
    bad.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(VoxpopError, match="map.json: expected a JSON object"):
        parse_label_map(str(bad), bundle_labels=BUNDLE)


def test_no_label_map_is_empty():
    assert parse_label_map(None, bundle_labels=BUNDLE) == {}
