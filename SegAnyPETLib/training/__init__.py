"""Headless training: SAM-Med3D's interactive recipe and SegAnyPET's CPCL (see :mod:`SegAnyPETLib.train`)."""
