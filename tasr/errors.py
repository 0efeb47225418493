"""Errors the user can fix (a bad flag, a missing file, a broken model file)."""


class TasrError(Exception):
    """An error with a message that names the thing and the reason; the CLI prints it without a traceback."""
