"""Text from files shown in a rich console (the leaderboard, the evaluation table): rich markup and
control characters escaped, so a label, a member id or an error about the data neither styles nor
drives the terminal (see `voxpop.data.terminal`)."""

from __future__ import annotations


def shown(value) -> str:
    """`value` as literal text for `rich`: `shown("[red]x\\x1b")` prints `[red]x\\x1b` as is."""
    from rich.markup import escape

    from voxpop.data.terminal import printable

    return escape(printable(str(value)))
