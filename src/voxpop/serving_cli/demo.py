"""`voxpop demo`: the whole pipeline on the built-in tweets, as the commands a user would type.

The demo is a script of ordinary `voxpop` commands (tune -> export -> evaluate), run in this
process and printed as it goes, so a user can copy any step and run it on their own data.
"""

from __future__ import annotations

import csv
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import typer

from voxpop.data.errors import VoxpopError
from voxpop.tune_spaces.options import DEFAULTS as TUNE

# The demo's search spaces, written as YAML files a user can copy and edit (`voxpop spaces show`
# prints the named ones in the same syntax). Narrower than the named spaces, around settings that
# train well on tweets in a few epochs, so that a handful of samples gives useful members.
DEMO_SPACES = {
    "cnn": {
        "family": "cnn",
        "embed_dim": {"choice": [64, 128]},
        "filters": {"choice": [64, 128]},
        "learning_rate": {"loguniform": [1e-3, 3e-3]},
        "batch_size": 64,
        "imbalance": "balanced",
    },
    "bigram": {
        "family": "bigram",
        "embed_dim": 64,
        "buckets": 65536,
        "learning_rate": {"loguniform": [2e-3, 6e-3]},
        "batch_size": 64,
        "imbalance": "balanced",
    },
    "fusion": {
        "family": "fusion",
        "encoder": "cnn",
        "embed_dim": 64,
        "filters": 64,
        "learning_rate": {"loguniform": [1e-3, 3e-3]},
        "batch_size": 64,
        "imbalance": "balanced",
    },
    "bilstm": {
        "family": "bilstm",
        "embed_dim": 64,
        "units": {"choice": [32, 64]},
        "learning_rate": {"loguniform": [1e-3, 3e-3]},
        "batch_size": 64,
        "imbalance": "balanced",
    },
    "tfidf": {"family": "tfidf", "C": {"loguniform": [2.0, 8.0]}, "imbalance": "balanced"},
    # A head on DEMO_SENTENCE_ENCODER's embeddings (computed once per text by tune). A hidden
    # layer, a high learning rate and small batches, as the demo's 2-3 epochs are all it gets
    # (measured on the quick demo's embeddings, val macro-F1 after 2 epochs: 0.636 with no hidden
    # layer at 3.4e-3 and batch 64, 0.682 with 128 units, 0.692 with 128 units at 1e-2 and
    # batch 32; scikit-learn's logistic regression 0.671).
    "sentence": {
        "family": "sentence",
        "head_units": [128],
        "head_dropout": {"uniform": [0.0, 0.3]},
        "learning_rate": {"loguniform": [5e-3, 1e-2]},
        "batch_size": 32,
        "imbalance": "balanced",
    },
    "tfidf_fusion": {
        "family": "tfidf_fusion",
        "C": {"loguniform": [2.0, 8.0]},
        "imbalance": "balanced",
    },
}


# The pretrained sentence encoder of the `sentence` space: the strongest single member out of
# domain, and worth its cost per row (bench/RESULTS.md, pretrained and sentence_predict). Used
# where it is installed (voxpop[encoder], which `make demo` installs); otherwise the demo says so
# and runs without that space.
DEMO_SENTENCE_ENCODER = "all-MiniLM-L6-v2"


@dataclass(frozen=True)
class DemoPlan:
    """How much tuning the demo does: the full demo, or --quick for a first look."""

    spaces: tuple[str, ...]
    samples: int
    max_epochs: int
    scheduler: str
    train_rows: int | None  # None: all 23,520 non-airline tweets
    size: int
    # ASHA's first rung, in training rows: about one epoch of the full demo's 16,464 training
    # tweets, so that a family which has not learned after one epoch makes room as before
    # (tune's default, 50,000 rows, would leave the demo's 3 epochs no rung at all).
    grace_rows: int | None = None


PLANS = {
    "full": DemoPlan(
        spaces=("cnn", "bigram", "fusion", "bilstm", "tfidf", "tfidf_fusion", "sentence"),
        samples=2,
        max_epochs=3,
        scheduler="asha",
        train_rows=None,
        size=6,
        grace_rows=16_000,
    ),
    # One sample per space: nothing for ASHA to compare, so every trial runs its epochs.
    "quick": DemoPlan(
        spaces=("cnn", "bigram", "tfidf_fusion", "sentence"),
        samples=1,
        max_epochs=2,
        scheduler="fifo",
        train_rows=6000,
        size=4,
    ),
}


def demo(
    ctx: typer.Context,
    quick: bool = typer.Option(
        False,
        "--quick",
        help="A first look in a few minutes: fewer trials and epochs on 6,000 training tweets.",
    ),
    out: Path = typer.Option(
        Path("voxpop-demo"),
        "--out",
        help="Directory for everything the demo writes: data/, runs/, bundle/, reports/.",
    ),
    cpus_per_trial: float = typer.Option(
        TUNE.cpus_per_trial, help="CPUs per trial (trials run side by side on the remaining cores)."
    ),
) -> None:
    """Run the whole pipeline on the built-in tweet sentiment set (38,158 tweets, 3 classes).

    The 14,638 tweets addressed to airlines are kept out of training entirely and serve as an
    out-of-domain external set; the other 23,520 are tuned on (ASHA, several families, and a
    head on the pretrained sentence encoder all-MiniLM-L6-v2 where voxpop[encoder] is
    installed), the best checkpoints are exported as a greedy ensemble bundle, and the bundle is
    evaluated on the held-out test split and on the airline tweets, beside each member and a
    TF-IDF baseline.

    Example: voxpop demo --quick --out /tmp/voxpop-demo
    """
    plan = PLANS["quick" if quick else "full"]
    started = time.monotonic()
    out = out.expanduser().resolve()
    data_dir, run_dir, bundle, reports = (
        out / "data",
        out / "runs" / "demo",
        out / "bundle",
        out / "reports",
    )

    train_csv, airline_csv = _write_demo_data(data_dir, train_rows=plan.train_rows)
    encoder = _installed_sentence_encoder()
    spaces = [name for name in plan.spaces if encoder or DEMO_SPACES[name]["family"] != "sentence"]
    space_files = write_spaces(out / "spaces", spaces)
    _run(
        ctx,
        [
            "tune",
            str(train_csv),
            *_repeat("--space", space_files),
            "--samples",
            plan.samples,
            "--max-epochs",
            plan.max_epochs,
            "--scheduler",
            plan.scheduler,
            "--cpus-per-trial",
            cpus_per_trial,
            "--storage",
            out / "runs",
            "--name",
            "demo",
            "--keep-checkpoints",
            1,
            *(["--grace-rows", plan.grace_rows] if plan.grace_rows else []),
            *(["--sentence-encoder", encoder] if encoder else []),
        ],
    )
    _run(
        ctx,
        ["export", run_dir, "--out", bundle, "--size", plan.size, "--select", "greedy", "--force"],
    )
    test_csv = _write_test_split(run_dir, data_dir / "test_split.csv")
    _run(ctx, ["evaluate", bundle, test_csv, airline_csv, "--out", reports])

    minutes = (time.monotonic() - started) / 60
    typer.secho(f"\nDemo finished in {minutes:.1f} minutes.", bold=True)
    typer.echo(
        f"  run:     {run_dir}\n  bundle:  {bundle}\n  reports: {reports}/summary.md, "
        f"{reports}/test_split/report.html, {reports}/airline_tweets/report.html"
    )
    typer.echo("Next, with your own files:")
    typer.echo(f"  voxpop predict {shlex.quote(str(bundle))} new_texts.csv --out predictions.csv")
    typer.echo(
        f"  echo 'my flight was delayed again' | voxpop predict {shlex.quote(str(bundle))} -"
    )
    typer.echo(f"  voxpop evaluate {shlex.quote(str(bundle))} labelled.csv --out report/")


def _write_demo_data(data_dir: Path, *, train_rows: int | None) -> tuple[Path, Path]:
    """The built-in tweets as two CSV files: training (non-airline) and the airline external set."""
    from voxpop.data.builtin import demo_split

    train, airline = demo_split()
    if train_rows is not None and train_rows < len(train):
        # A stratified subsample keeps the class balance of the full training set.
        fraction = train_rows / len(train)
        train = train.groupby("label", group_keys=False).sample(frac=fraction, random_state=0)
    data_dir.mkdir(parents=True, exist_ok=True)
    train_csv, airline_csv = data_dir / "tweets_train.csv", data_dir / "airline_tweets.csv"
    _write_csv(train[["id", "text", "label"]], train_csv)
    _write_csv(airline[["id", "text", "label"]], airline_csv)
    typer.echo(
        f"data: {len(train):,} training tweets -> {train_csv}; "
        f"{len(airline):,} airline tweets (external set) -> {airline_csv}"
    )
    return train_csv, airline_csv


def _installed_sentence_encoder() -> str | None:
    """DEMO_SENTENCE_ENCODER if its packages are installed; else None, after a note."""
    from voxpop.data.sentence import INSTALL_HINT, find_sentence_model

    try:
        import tokenizers  # noqa: F401  (reads the encoder's tokenizer.json)

        find_sentence_model(DEMO_SENTENCE_ENCODER)
    except (ImportError, VoxpopError):
        typer.echo(
            f"note: {DEMO_SENTENCE_ENCODER} is not installed, so the demo runs without its "
            f"sentence member (to add it: {INSTALL_HINT})"
        )
        return None
    return DEMO_SENTENCE_ENCODER


def write_spaces(directory: Path, names: list[str]) -> list[Path]:
    """DEMO_SPACES[name] of each name as `directory/name.yaml`, a file `--space` takes."""
    import yaml

    from voxpop.data.atomic import write_text

    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"{name}.yaml" for name in names]
    for name, path in zip(names, paths):
        write_text(
            path, yaml.safe_dump(DEMO_SPACES[name], default_flow_style=None, sort_keys=False)
        )
    return paths


def _write_test_split(run_dir: Path, target: Path) -> Path:
    """The run's held-out test rows (never seen by tuning or selection) as a CSV for evaluate."""
    from voxpop.data.rundir import read_run

    test = read_run(run_dir).rows("test")
    if test.empty:
        raise VoxpopError(f"{run_dir}: the run has no test split to evaluate on")
    _write_csv(test[["id", "text", "label"]], target)
    return target


def _write_csv(frame, path: Path) -> None:
    from voxpop.data.atomic import atomic_path

    # Quote every field: some tweets hold a bare carriage return, which unquoted CSV would split.
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, quoting=csv.QUOTE_ALL)


def _repeat(flag: str, values) -> list[str]:
    return [item for value in values for item in (flag, value)]


def _run(ctx: typer.Context, args: list) -> None:
    """Run one `voxpop` command in this process (through the root command of `ctx`), echoing it
    first as a user would type it."""
    words = [str(arg) for arg in args]
    typer.secho(f"\n$ voxpop {shlex.join(words)}", fg="cyan", bold=True)
    # Outside standalone mode click returns a command's exit code instead of exiting.
    code = ctx.find_root().command.main(words, prog_name="voxpop", standalone_mode=False)
    if code:
        raise VoxpopError(f"demo step `voxpop {words[0]}` failed (exit {code})")
