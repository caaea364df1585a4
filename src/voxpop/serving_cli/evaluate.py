"""`voxpop evaluate`: not built yet (see the open issues)."""

import typer


def evaluate() -> None:
    """Not built yet."""
    raise typer.Exit(code=1)
