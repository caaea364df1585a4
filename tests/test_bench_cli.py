"""`voxpop bench BUNDLE INPUT`: times every prediction path of a real (factory-made) bundle."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from bundle_factory import bundle_dir, tweet_preprocessor, tweet_rows  # noqa: F401
from voxpop.serving_cli.app import app


def test_bench_reports_every_path_with_positive_rates(tmp_path, bundle_dir, tweet_rows):
    data = tmp_path / "texts.parquet"
    tweet_rows[["text"]].iloc[:200].to_parquet(data)
    result = CliRunner().invoke(
        app,
        ["bench", str(bundle_dir), str(data), "--rows", "500", "--repeats", "1"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    rates = dict(re.findall(r"│ ([a-z0-9, ]+?)\s+│\s+([\d,]+) │", result.output))
    assert set(rates) == {
        "encoding",
        "weighted vote, fused graph",
        "weighted vote, separate sessions",
        "member m1 alone",
        "member m2 alone",
        "member m3 alone",
    }
    assert all(int(rate.replace(",", "")) > 0 for rate in rates.values())
    # rich wraps the table's title to the table's width: compare with the white space folded
    assert "500 rows, batch 1024" in " ".join(result.output.split())


def test_bench_refuses_an_empty_table(tmp_path, bundle_dir):
    data = tmp_path / "empty.csv"
    data.write_text("text\n")
    result = CliRunner().invoke(app, ["bench", str(bundle_dir), str(data)])
    assert result.exit_code == 2
    assert "error:" in result.output


def test_bench_reads_a_table_by_format(tmp_path, bundle_dir, tweet_rows):
    data = tmp_path / "texts.txt"
    tweet_rows[["text"]].iloc[:50].to_json(data, orient="records", lines=True)
    result = CliRunner().invoke(
        app,
        [
            "bench",
            str(bundle_dir),
            str(data),
            "--format",
            "jsonl",
            "--rows",
            "100",
            "--repeats",
            "1",
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "100 rows, batch 1024" in " ".join(result.output.split())
    result = CliRunner().invoke(app, ["bench", str(bundle_dir), str(data)])
    assert result.exit_code == 2
    assert "name it with --format csv|tsv|parquet|jsonl" in result.output
