"""read_table / iter_table_chunks: every format, the bad inputs, and what the report counts."""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from voxpop.data import VoxpopError, iter_table_chunks, read_table
from voxpop.data.builtin import tweets_path

ROWS = pd.DataFrame(
    {
        "id": ["a", "b", "c", "d"],
        "text": ["good day", "NA", "bad :(", "meh"],
        "label": ["pos", "neg", "neg", "neu"],
        "score": [1.5, 2.0, -1.0, 0.0],
    }
)


def _write(frame: pd.DataFrame, path):
    writers = {
        ".csv": lambda: frame.to_csv(path, index=False),
        ".tsv": lambda: frame.to_csv(path, sep="\t", index=False),
        ".jsonl": lambda: frame.to_json(path, orient="records", lines=True, force_ascii=False),
        ".parquet": lambda: frame.to_parquet(path, index=False),
    }
    writers[path.suffix]()
    return path


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_every_format_reads_the_same_aligned_rows(tmp_path, suffix):
    path = _write(ROWS, tmp_path / f"t{suffix}")
    table = read_table(path, label_col="label", feature_cols=["score"], id_col="id")
    assert table.texts == ["good day", "NA", "bad :(", "meh"]  # "NA" is a text, not a null
    assert table.labels.tolist() == ["pos", "neg", "neg", "neu"]
    assert table.ids.tolist() == ["a", "b", "c", "d"]
    assert table.rows.tolist() == [0, 1, 2, 3] and table.rows.dtype == np.int64
    assert table.features.dtype == np.float32
    np.testing.assert_array_equal(table.features[:, 0], [1.5, 2.0, -1.0, 0.0])
    assert table.report.n_rows == 4 and table.report.n_empty_texts == 0


def test_format_option_overrides_the_extension(tmp_path):
    path = tmp_path / "data.txt"
    ROWS.to_csv(path, sep="\t", index=False)
    assert read_table(path, format="tsv").texts[0] == "good day"
    assert read_table(path, format="TSV").texts[0] == "good day"
    with pytest.raises(
        VoxpopError,
        match=r"data.txt: cannot tell the table format from the "
        r"extension '\.txt' \(known: \.csv.*name it with --format "
        r"csv\|tsv\|parquet\|jsonl$",
    ):
        read_table(path)
    with pytest.raises(
        VoxpopError,
        match=r"--format 'xls' is not a table format \(choose from "
        r"csv, tsv, parquet, jsonl\)",
    ):
        read_table(path, format="xls")


def test_integer_labels_become_strings_and_default_ids_are_row_numbers(tmp_path):
    path = _write(
        pd.DataFrame({"text": ["x", "y", "z"], "label": [0, 2, 10]}), tmp_path / "t.parquet"
    )
    table = read_table(path, label_col="label")
    assert table.labels.tolist() == ["0", "2", "10"]
    assert table.ids.tolist() == ["0", "1", "2"]


def test_null_and_empty_texts_are_kept_as_empty_and_counted(tmp_path):
    (tmp_path / "t.csv").write_text('text,label\nhello,a\n,b\n"",a\n', encoding="utf-8")
    (tmp_path / "t.jsonl").write_text('{"text": null, "label": "a"}\n{"text": "x", "label": "b"}\n')
    csv = read_table(tmp_path / "t.csv", label_col="label")
    assert csv.texts == ["hello", "", ""] and csv.report.n_empty_texts == 2
    assert csv.report.warnings == ["2 empty or null texts (kept as empty strings)"]
    jsonl = read_table(tmp_path / "t.jsonl", label_col="label")
    assert jsonl.texts == ["", "x"] and jsonl.report.n_empty_texts == 1


def test_carriage_returns_inside_unquoted_texts_stay_in_the_text(tmp_path):
    # pandas writes "a\rb" unquoted; in an LF file that CR is text. CRLF files still read.
    frame = pd.DataFrame({"text": ["one\rtwo", "three"], "label": ["a", "b"]})
    frame.to_csv(tmp_path / "lf.csv", index=False)
    assert read_table(tmp_path / "lf.csv", label_col="label").texts == ["one\rtwo", "three"]
    (tmp_path / "crlf.csv").write_bytes(b'text,label\r\n"x\r\ny",a\r\nz,b\r\n')
    crlf = read_table(tmp_path / "crlf.csv", label_col="label")
    assert crlf.texts == ["x\r\ny", "z"] and crlf.labels.tolist() == ["a", "b"]


def test_undecodable_bytes_are_replaced_and_counted(tmp_path):
    path = tmp_path / "t.csv"
    # \xff and \xfe are never valid UTF-8; the literal U+FFFD (valid, 3 bytes) is not counted.
    path.write_bytes(b"text\ncaf\xc3\xa9\nbad\xff\xfebytes\nok \xef\xbf\xbd\n")
    table = read_table(path)
    assert table.texts == ["caf\u00e9", "bad\ufffd\ufffdbytes", "ok \ufffd"]
    assert table.report.n_replaced_bytes == 2
    assert table.report.warnings == ["2 bytes that are not UTF-8 (replaced by U+FFFD)"]
    assert (
        table.report.summary("t.csv")
        == "t.csv: 3 rows, 0 empty texts, 2 undecodable bytes replaced"
    )


def test_parquet_binary_text_column_is_decoded_with_replacement(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"text": pa.array([b"fine", b"bro\x80ken"], pa.binary())}), path)
    table = read_table(path)
    assert table.texts == ["fine", "bro\ufffdken"] and table.report.n_replaced_bytes == 1


@pytest.mark.parametrize(
    "content, message",
    [
        (None, r"missing.csv: file not found"),
        (b"", r"t.csv: the file is empty"),
        (b"text,label\n", r"t.csv: the table has no rows"),
        (b"txt,label\nhi,a\n", r"t.csv: column 'text' not found \(columns: txt, label\)"),
        (b"text,label\nhi,a\nyo,\n", r"t.csv: line 3 \(row 2\), column 'label': missing label"),
        (
            b"text,label,score\nhi,a,1\nyo,b,lots\n",
            r"t.csv: line 3 \(row 2\), column 'score': 'lots' is not a finite number",
        ),
        (
            b"text,label,score\nhi,a,\nyo,b,2\n",
            r"t.csv: line 2 \(row 1\), column 'score': missing value",
        ),
    ],
)
def test_bad_tables_give_one_line_errors_naming_file_row_and_column(tmp_path, content, message):
    path = tmp_path / ("missing.csv" if content is None else "t.csv")
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(VoxpopError, match=message) as err:
        read_table(
            path, label_col="label", feature_cols=["score"] if b"score" in (content or b"") else ()
        )
    assert "\n" not in str(err.value)


def test_single_class_label_column_is_refused_when_classes_are_required(tmp_path):
    path = _write(pd.DataFrame({"text": ["a", "b"], "label": ["x", "x"]}), tmp_path / "t.csv")
    assert read_table(path, label_col="label").labels.tolist() == ["x", "x"]
    with pytest.raises(
        VoxpopError,
        match=r"t.csv: column 'label' has 1 class\(es\) \(x\); training needs at least 2",
    ):
        read_table(path, label_col="label", require_classes=2)


def test_duplicate_ids_are_refused(tmp_path):
    path = _write(
        pd.DataFrame({"id": ["a", "b", "a"], "text": ["x", "y", "z"]}), tmp_path / "t.csv"
    )
    with pytest.raises(
        VoxpopError, match=r"t.csv: column 'id': id 'a' appears more than once \(rows 1 and 3\)"
    ):
        read_table(path, id_col="id")


def test_parquet_column_of_the_wrong_type_is_named(tmp_path):
    path = _write(pd.DataFrame({"text": [1.5, 2.5], "label": ["a", "b"]}), tmp_path / "t.parquet")
    with pytest.raises(
        VoxpopError,
        match=r"t.parquet: column 'text' has Parquet type double, but a text column must be one of: string",
    ):
        read_table(path, label_col="label")
    path = _write(pd.DataFrame({"text": ["a", "b"], "f": ["1", "2"]}), tmp_path / "f.parquet")
    with pytest.raises(
        VoxpopError,
        match=r"f.parquet: column 'f' has Parquet type (large_)?string, but a feature column",
    ):
        read_table(path, feature_cols=["f"])


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_chunks_stream_in_file_order_and_match_the_whole_read(tmp_path, suffix):
    frame = pd.DataFrame(
        {"text": [f"tweet {i}" for i in range(23)], "label": ["a", "b"] * 11 + ["a"]}
    )
    frame.loc[[3, 17], "text"] = ""  # empty texts in two different chunks
    path = _write(frame, tmp_path / f"t{suffix}")
    chunks = list(iter_table_chunks(path, chunk_rows=5, label_col="label"))
    assert [len(c) for c in chunks] == [5, 5, 5, 5, 3]
    whole = read_table(path, label_col="label")
    assert [t for c in chunks for t in c.texts] == whole.texts == frame["text"].tolist()
    assert [c.report.n_empty_texts for c in chunks] == [1, 0, 0, 1, 0]
    assert whole.report.n_empty_texts == 2 and len(whole.report.warnings) == 1
    assert np.concatenate([c.rows for c in chunks]).tolist() == list(range(23))
    assert np.concatenate([c.ids for c in chunks]).tolist() == [str(i) for i in range(23)]


def test_dash_reads_one_text_per_line_from_stdin(monkeypatch):
    fake = io.TextIOWrapper(io.BytesIO(b"first line\r\nsecond \xff\n\nlast"), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", fake)
    chunks = list(iter_table_chunks("-", chunk_rows=3))
    texts = [t for c in chunks for t in c.texts]
    assert texts == ["first line", "second \ufffd", "", "last"]
    assert [len(c) for c in chunks] == [3, 1]
    assert sum(c.report.n_replaced_bytes for c in chunks) == 1
    assert sum(c.report.n_empty_texts for c in chunks) == 1


def test_real_tweets_read_complete_and_aligned():
    # The built-in CSV has bytes that are not UTF-8: pandas' own reader, replacing them, is the
    # reference for every row.
    path = tweets_path()
    reference = pd.read_csv(path, encoding_errors="replace", keep_default_na=False)
    table = read_table(path, label_col="sentiment", require_classes=2)
    assert len(table) == len(reference) == 38_158
    assert table.texts == reference["text"].tolist()
    assert table.labels.tolist() == reference["sentiment"].tolist()
    assert json.dumps(sorted(set(table.labels))) == '["negative", "neutral", "positive"]'
