"""The one exception type a user sees as a clean one-line message (the CLI prints it, exit 2)."""


class VoxpopError(Exception):
    """A problem with the user's input, files or options: reported as one line, no traceback."""
