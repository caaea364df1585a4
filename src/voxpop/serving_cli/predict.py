"""`voxpop predict`: not built yet (see the open issues)."""

import typer


def predict() -> None:
    """Not built yet."""
    raise typer.Exit(code=1)
