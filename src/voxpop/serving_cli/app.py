"""Assembles the Typer app from one small module per sub-command."""

from __future__ import annotations

import os

import typer

from voxpop import __version__
from voxpop.serving_cli import (
    bench,
    demo,
    distill,
    evaluate,
    export,
    info,
    keys,
    predict,
    spaces,
    tune,
)
from voxpop.serving_cli.errors import flush_stdout, os_error_exit_code, user_errors

# Quiet TensorFlow's C++ start-up chatter and Tune's checkpoint-frequency advice, here and in the
# Ray workers this process starts (they inherit the environment). Set before either is imported.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")

app = typer.Typer(
    name="voxpop",
    help=(
        "Tune many Keras text classifiers with Ray Tune, export the best to an ONNX ensemble "
        "bundle, and predict/evaluate with soft, hard or weighted voting in ONNX Runtime.\n\n"
        "Typical flow: voxpop tune DATA.csv --storage runs --name myrun  ->  "
        "voxpop export runs/myrun --out bundle  ->  voxpop predict bundle new.csv --out preds.csv  ->  "
        "voxpop evaluate bundle labelled.csv --out report/"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"voxpop {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    pass


for _name, _command in {
    "tune": tune.tune,
    "export": export.export,
    "distill": distill.distill,
    "predict": predict.predict,
    "evaluate": evaluate.evaluate,
    "info": info.info,
    "keygen": keys.keygen,
    "bench": bench.bench,
    "demo": demo.demo,
}.items():
    app.command(_name)(user_errors(_command))
app.add_typer(spaces.app, name="spaces")


def main() -> None:
    """Console entry point. Output Typer itself writes (--help, --version) to a full disk or a
    closed pipe ends the same way as a command's."""
    try:
        app()
        code = 0
    except SystemExit as done:
        code = done.code
    except OSError as err:
        code = os_error_exit_code(err)
    try:
        flush_stdout()
    except OSError as err:
        code = os_error_exit_code(err)
    raise SystemExit(code)
