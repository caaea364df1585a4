"""report.json / report.md / report.html and the PNG plots, from a report built on arrays."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
from matplotlib.image import imread

from voxpop.data.errors import VoxpopError
from voxpop.reports.baselines import majority_baseline
from voxpop.reports.evaluation import ModelOutput, build_report
from voxpop.reports.render import parse_formats, write_report, write_summary

LABELS = ["negative", "neutral", "positive"]
TOP_KEYS = [
    "schema_version",
    "labels",
    "data",
    "primary",
    "votes",
    "members",
    "baselines",
    "agreement",
    "comparisons",
    "member_contributions",
    "oov",
    "hardest",
    "warnings",
]


@pytest.fixture(scope="module")
def report():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 120)
    members = {}
    for member_id, strength in [("m1", 2.0), ("m2", 0.2)]:
        logits = rng.normal(size=(120, 3))
        logits[np.arange(120), y] += strength
        members[member_id] = ModelOutput(np.exp(logits) / np.exp(logits).sum(1, keepdims=True))
    soft = (members["m1"].probs + members["m2"].probs) / 2
    texts = [f"tweet <b>{i}</b> | pipe" for i in range(120)]
    return build_report(
        y_true=y,
        labels=LABELS,
        votes={"soft": ModelOutput(soft)},
        members=members,
        baselines={"majority": majority_baseline(y, n_rows=120, n_classes=3)},
        texts=texts,
        ids=[f"r{i}" for i in range(120)],
        primary="soft",
        oov_rates=np.full(120, 0.9),
        hardest=4,
        data={
            "n_rows": 125,
            "n_evaluated": 120,
            "n_unmapped": 5,
            "unmapped_labels": {"meh": 5},
            "unmapped_rows": [1, 2, 3, 4, 5],
            "absent_classes": [],
        },
    )


def test_writes_every_format_and_plot_and_json_round_trips(tmp_path, report):
    written = write_report(report, tmp_path, formats=["json", "md", "html"], title="t")
    assert sorted(p.name for p in written) == sorted(
        [
            "confusion_matrix.png",
            "per_class_f1.png",
            "reliability.png",
            "report.json",
            "report.md",
            "report.html",
        ]
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)
    loaded = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert list(loaded) == TOP_KEYS
    assert loaded == json.loads(json.dumps(report))
    for name in ("confusion_matrix.png", "per_class_f1.png", "reliability.png"):
        assert imread(tmp_path / name).ndim == 3


def test_html_embeds_the_confusion_matrix_image(tmp_path, report):
    write_report(report, tmp_path, formats=["html"], title="t")
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    match = re.search(
        r'<img id="confusion_matrix" alt="confusion matrix" '
        r'src="data:image/png;base64,([A-Za-z0-9+/=]+)">',
        html,
    )
    assert match
    png = base64.b64decode(match.group(1))
    assert png == (tmp_path / "confusion_matrix.png").read_bytes()
    height, width, _ = imread(io.BytesIO(png)).shape
    assert height > 100 and width > 100
    assert len(re.findall(r'src="data:image/png;base64,', html)) == 3
    assert 'src="http' not in html and "<script" not in html
    assert "tweet &lt;b&gt;" in html and "tweet <b>" not in html  # texts are escaped
    overrule = report["agreement"]["vote_overrules_best_member"]["soft"]
    assert "<h2>Member agreement</h2>" in html
    assert f"<td>soft</td><td>m1</td><td>{overrule['rate']:.4f}</td>" in html


def test_markdown_has_warnings_table_and_unmapped_rows(tmp_path, report):
    write_report(report, tmp_path, formats=["md"], title="Evaluation of x.csv")
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert markdown.startswith("# Evaluation of x.csv\n")
    assert "> **warning:** 100% of texts are more than 50% out-of-vocabulary" in markdown
    m2 = report["members"]["m2"]
    assert f"| member m2 | {m2['macro_f1']:.4f} | {m2['accuracy']:.4f} |" in markdown
    assert "- rows: 125, evaluated: 120, label unmapped: 5" in markdown
    assert "unmapped labels: 'meh' (5); rows: [1, 2, 3, 4, 5]" in markdown
    assert "tweet <b>" in markdown and "\\| pipe" in markdown  # a pipe would split the cell
    hardest_rows = [line for line in markdown.splitlines() if line.startswith("| r")]
    assert len(hardest_rows) == 4


def test_summary_lists_each_input(tmp_path, report):
    write_summary({"a": report, "b": report}, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [row["input"] for row in summary["inputs"]] == ["a", "b"]
    assert summary["inputs"][0]["macro_f1"] == report["votes"]["soft"]["macro_f1"]
    assert "| b | 120 | soft |" in (tmp_path / "summary.md").read_text()


def test_formats_are_validated():
    assert parse_formats("MD, json") == ["md", "json"]
    with pytest.raises(
        VoxpopError, match=r"--report-format: pdf not valid \(choose from md, html, json"
    ):
        parse_formats("md,pdf")
