"""The project's one input-error type: what a user sent was wrong, and the message says how.

Configs (`__post_init__`), the image loader and the model loader raise `InputError` (or a subclass)
with one line that names the input and its allowed range. The CLI turns exactly these into one line
on stderr with exit status 2 and the app into a one-line message; any other exception is a bug and
keeps its traceback (CLI) or is logged on the server (app).
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input (a parameter, a file, a model name); the message is shown as it is."""
