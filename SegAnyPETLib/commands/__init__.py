"""Sub-commands of the ``seganypet`` command line, one module each (see :mod:`SegAnyPETLib.cli`)."""
