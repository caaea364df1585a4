"""The one exception type a user sees as a clean one-line message (the CLI prints it, exit 2)."""


class VoxpopError(Exception):
    """A problem with the user's input, files or options: reported as one line, no traceback."""


def first_line(err: BaseException) -> str:
    """The first line of another library's error message (or its type's name), for a VoxpopError
    that wraps it."""
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__
