"""`voxpop spaces`: not built yet (see the open issues)."""

import typer

app = typer.Typer(help="List and show the named hyperparameter search spaces.")
