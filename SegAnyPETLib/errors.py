"""The one exception type the library raises for bad input.

Every message names the problem and, where there is one, the file; the command line prints it on
one line and exits with status 2, the Slicer module shows it in a message box.
"""


class SegAnyPETError(ValueError):
    """Bad input: wrong or corrupt file, impossible value, click outside the volume, ..."""


class Cancelled(Exception):
    """The user cancelled a running computation (an image encoder, a download); nothing changed."""
