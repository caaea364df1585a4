"""`voxpop tune`: not built yet (see the open issues)."""

import typer


def tune() -> None:
    """Not built yet."""
    raise typer.Exit(code=1)
