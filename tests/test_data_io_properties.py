"""Properties of the table readers (hypothesis): any table written in any format reads back as the
same rows and the same labels, and a malformed row is always an error naming its line.

Tables are written by the tools a user has (pandas for CSV, TSV and Parquet; the json module for
JSON Lines, as pandas' writer rounds floats to 10 digits), with texts built from the characters
that break readers: quotes, separators, LF, CR, CRLF, a byte-order mark, NUL, unicode, empty.
Examples are bounded so the file runs in seconds.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voxpop.data import VoxpopError, iter_table_chunks, read_table
from voxpop.data.io import canonical_label

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PIECES = [
    '"',
    '""',
    ",",
    "\t",
    "\n",
    "\r",
    "\r\n",
    " ",
    "NA",
    "null",
    "\ufeff",
    "\x00",
    "é",
    "🙂",
    "\u202e",
    "a",
    "b c",
    "1.0",
    "\\",
    "#",
    "'",
]
TEXT = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=6).map("".join),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
)
LABEL_COLUMNS = st.one_of(
    st.lists(st.integers(-(10**12), 10**12), min_size=1, max_size=8),
    st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=1, max_size=8),
    st.lists(st.booleans(), min_size=1, max_size=8),
    st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "1",
                    "1.0",
                    " 1.00 ",
                    "01",
                    "+1",
                    "2.50",
                    "1e3",
                    "pos",
                    "neg ",
                    "N/A",
                    "True",
                    "a,b",
                    'say "hi"',
                    "x\ny",
                ]
            ),
            st.text(
                st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
                min_size=1,
                max_size=6,
            ),
        ),
        min_size=1,
        max_size=8,
    ),
)


def write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        with open(path, "w", encoding="utf-8") as out:
            for record in frame.to_dict(orient="records"):
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


@SETTINGS
@given(data=st.data(), labels=LABEL_COLUMNS)
def test_every_format_reads_back_the_same_rows_and_labels(tmp_path_factory, data, labels):
    texts = data.draw(st.lists(TEXT, min_size=len(labels), max_size=len(labels)))
    frame = pd.DataFrame(
        {"id": [f"r{i}" for i in range(len(texts))], "text": texts, "label": labels}
    )
    expected_labels = [canonical_label(label) for label in labels]
    folder = tmp_path_factory.mktemp("formats")
    for suffix in (".csv", ".tsv", ".jsonl", ".parquet"):
        table = read_table(write(frame, folder / f"t{suffix}"), label_col="label", id_col="id")
        assert table.texts == texts, suffix
        assert table.labels.tolist() == expected_labels, suffix
        assert table.ids.tolist() == frame["id"].tolist(), suffix
        assert table.report.n_empty_texts == sum(1 for t in texts if not t), suffix


@pytest.mark.parametrize(
    "values, label",
    [
        ([1, 1.0, "1", "1.0", " 1.00 ", "1e0"], "1"),
        ([2.5, "2.50", "2.5"], "2.5"),
        ([True, "True"], "True"),
        (["01"], "01"),
        (["+1"], "+1"),
        ([" positive\t"], "positive"),
    ],
)
def test_one_label_rule_whatever_the_type(values, label):
    assert {canonical_label(value) for value in values} == {label}


def test_one_and_one_point_zero_are_one_class_in_every_format(tmp_path):
    # a CSV written by a tool that turned the integer labels of rows with a gap into floats
    (tmp_path / "t.csv").write_text("text,label\na,1\nb,1.0\nc,2\n")
    (tmp_path / "t.jsonl").write_text(
        '{"text":"a","label":1}\n{"text":"b","label":1.0}\n{"text":"c","label":"2"}\n'
    )
    pd.DataFrame({"text": ["a", "b", "c"], "label": [1.0, 1.0, 2.0]}).to_parquet(
        tmp_path / "t.parquet"
    )
    for name in ("t.csv", "t.jsonl", "t.parquet"):
        assert read_table(tmp_path / name, label_col="label").labels.tolist() == ["1", "1", "2"]


def _rows_as_csv(rows: list[list[str]], sep: str = ",") -> list[str]:
    """Each row as the csv module writes it (quoted where needed, LF line ends)."""
    lines = []
    for row in rows:
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=sep, lineterminator="\n").writerow(row)
        lines.append(buffer.getvalue())
    return lines


MUTATIONS = ["extra_field", "missing_field", "unclosed_quote"]


@SETTINGS
@given(texts=st.lists(TEXT, min_size=1, max_size=8), data=st.data())
def test_a_malformed_row_is_an_error_naming_its_line(tmp_path_factory, texts, data):
    mutation = data.draw(st.sampled_from(MUTATIONS))
    sep, suffix = data.draw(st.sampled_from([(",", ".csv"), ("\t", ".tsv")]))
    bad = data.draw(st.integers(0, len(texts) - 1))
    if mutation == "unclosed_quote":  # nothing after it is quoted, so no quote can close it
        texts = [
            t.replace('"', "").replace(sep, "").replace("\n", "") if i >= bad else t
            for i, t in enumerate(texts)
        ]
    rows = [[f"id{i}", text, "pos"] for i, text in enumerate(texts)]
    lines = _rows_as_csv(rows, sep)
    if mutation == "extra_field":
        lines[bad] = _rows_as_csv([rows[bad] + ["surplus"]], sep)[0]
    elif mutation == "missing_field":
        lines[bad] = _rows_as_csv([rows[bad][:2]], sep)[0]
    else:
        lines[bad] = '"' + lines[bad]
    path = tmp_path_factory.mktemp("bad") / f"t{suffix}"
    path.write_text(
        sep.join(["id", "text", "label"]) + "\n" + "".join(lines), encoding="utf-8", newline=""
    )
    line = 2 + sum(text.count("\n") for text in lines[:bad])  # the line the bad row starts on
    with pytest.raises(VoxpopError, match=rf"t\{suffix}: line {line}\b"):
        read_table(path, label_col="label", id_col="id")


JSON_MUTATIONS = ["truncated", "key_missing", "not_an_object", "key_twice"]


@SETTINGS
@given(texts=st.lists(TEXT, min_size=1, max_size=8), data=st.data())
def test_a_malformed_json_line_is_always_an_error_naming_its_line(tmp_path_factory, texts, data):
    mutation = data.draw(st.sampled_from(JSON_MUTATIONS))
    bad = data.draw(st.integers(0, len(texts) - 1))
    lines = [
        json.dumps({"id": f"id{i}", "text": t, "label": "pos"}, ensure_ascii=False)
        for i, t in enumerate(texts)
    ]
    record = {"id": f"id{bad}", "text": texts[bad], "label": "pos"}
    if mutation == "truncated":
        lines[bad] = lines[bad][: data.draw(st.integers(1, len(lines[bad]) - 1))]
    elif mutation == "key_missing":
        lines[bad] = json.dumps({k: v for k, v in record.items() if k != "label"})
    elif mutation == "not_an_object":
        lines[bad] = json.dumps(list(record.values()))
    else:
        lines[bad] = lines[bad][:-1] + ', "text": "again"}'
    path = tmp_path_factory.mktemp("bad") / "t.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(VoxpopError, match=rf"t\.jsonl: line {bad + 1}\b"):
        read_table(path, label_col="label", id_col="id")


@pytest.mark.parametrize(
    "content, message",
    [
        # the first data row one field longer than the header: pandas took column 1 as the index
        (
            b"text,label\nhello, world,positive\nfine,negative\n",
            r"line 2 has 3 field\(s\), but the header has 2",
        ),
        (b"text,label\nfine,negative\nhello, world,positive\n", r"line 3 has 3 field\(s\)"),
        (b"text,label,id\nfine,negative\n", r"line 2 has 2 field\(s\), but the header has 3"),
        (
            b'text,label\n"hello,positive\nfoo,negative\n',
            r"line 2: a quote opened in this row is never closed",
        ),
        (
            b'text,label\nok,a\n"hello,positive\nsay "hi",negative\n',
            r"line 3: a quoted field is followed by more text",
        ),
        (b"text,text\na,b\n", r"column 'text' appears more than once in the header"),
        (b"\ntext\na\n", r"line 1 is blank \(expected the header row\)"),
        (b"\xff\xfet\x00e\x00x\x00t\x00\n\x00", r"the file is UTF-16 text; save it as UTF-8"),
    ],
)
def test_a_malformed_csv_is_an_error_naming_the_line(tmp_path, content, message):
    path = tmp_path / "t.csv"
    path.write_bytes(content)
    with pytest.raises(VoxpopError, match=message) as err:
        read_table(path, label_col="label" if b"label" in content else None)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "content, message",
    [
        (b'{"text": "a"}\n[1, 2]\n', r"line 2: not a JSON object"),
        (b'{"text": "a", "text": "b"}\n', r"line 1: key 'text' appears more than once"),
        (
            b'{"text": "a"}\n{"txt": "b"}\n',
            r"line 2: column 'text' missing \(the object holds: txt\)",
        ),
        (b'{"text": {"nested": 1}}\n', r"line 1, column 'text': an object is not a value"),
        (b'{"text": "a"}\n{"text": NaN}\n', r"line 2: NaN is not a JSON value"),
        (b'{"text": "a"\n', r"line 1: not valid JSON"),
        (b"\n\n", r"no JSON object, only blank lines"),
        (b"", r"the file is empty"),
    ],
)
def test_a_malformed_json_line_is_an_error_naming_the_line(tmp_path, content, message):
    path = tmp_path / "t.jsonl"
    path.write_bytes(content)
    with pytest.raises(VoxpopError, match=message):
        read_table(path)


def test_parquet_with_duplicate_column_names_is_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    pq.write_table(
        pa.Table.from_arrays([pa.array(["a"]), pa.array(["b"])], names=["text", "text"]), path
    )
    with pytest.raises(VoxpopError, match="column 'text' appears more than once"):
        read_table(path)


@SETTINGS
@given(
    lines=st.lists(st.sampled_from(["", "a", "b c", " ", "é🙂", "x y z"]), min_size=1, max_size=12)
)
def test_blank_lines_are_empty_rows_counted_alike_in_a_file_and_on_stdin(
    tmp_path_factory, lines, monkeypatch_stdin
):
    folder = tmp_path_factory.mktemp("blank")
    body = "".join(line + "\n" for line in lines)
    (folder / "t.csv").write_text("text\n" + body, encoding="utf-8")
    (folder / "t.jsonl").write_text(
        "".join((json.dumps({"text": line}) if line else "") + "\n" for line in lines),
        encoding="utf-8",
    )
    monkeypatch_stdin(body.encode())
    expected_empty = sum(1 for line in lines if not line)
    for source in (folder / "t.csv", folder / "t.jsonl", "-"):
        if source != "-" and source.suffix == ".jsonl" and not any(lines):
            continue  # a JSON Lines file of blank lines only holds no object: refused
        chunks = list(iter_table_chunks(source, chunk_rows=5))
        assert [t for c in chunks for t in c.texts] == lines, source
        assert sum(c.report.n_empty_texts for c in chunks) == expected_empty, source


@pytest.fixture
def monkeypatch_stdin(monkeypatch):
    def feed(data: bytes) -> None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))

    return feed


def test_a_blank_line_in_a_labelled_table_is_a_missing_label_naming_its_line(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,label\nfine,pos\n\nbad,neg\n")
    assert read_table(path).texts == ["fine", "", "bad"]  # no label read: an empty text
    message = r"t.csv: line 3 \(row 2, a blank line\), column 'label': missing label"
    with pytest.raises(VoxpopError, match=message):
        read_table(path, label_col="label")


def test_reading_stays_flat_in_memory_whatever_the_row_count(tmp_path):
    """Chunks are independent: peak memory of streaming 20,000 rows is that of 2,000."""
    import tracemalloc

    def peak(n_rows: int, suffix: str) -> int:
        path = tmp_path / f"{n_rows}{suffix}"
        if not path.exists():
            write(pd.DataFrame({"text": [f"text number {i} " * 8 for i in range(n_rows)]}), path)
        tracemalloc.start()
        for _ in iter_table_chunks(path, chunk_rows=500):
            pass
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak

    for suffix in (".csv", ".jsonl", ".parquet"):
        small, large = peak(2_000, suffix), peak(20_000, suffix)
        assert large < 1.5 * small, (suffix, small, large)
