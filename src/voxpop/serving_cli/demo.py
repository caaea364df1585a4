"""`voxpop demo`: not built yet (see the open issues)."""

import typer


def demo() -> None:
    """Not built yet."""
    raise typer.Exit(code=1)
