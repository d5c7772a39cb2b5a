"""SIGINT and SIGTERM during training: finish the current step, save ``RUN/last.pt``, then stop.

While :class:`StopOnSignal` is active, the first SIGINT (Ctrl-C) or SIGTERM (``kill``, a batch
scheduler) only records the request; the trainer checks it after each step, saves its state and
raises :class:`TrainingInterrupted`. A second signal interrupts at once (the previous ``last.pt``
is intact: it is written atomically).
"""
from __future__ import annotations

import signal
import threading
from typing import Optional

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(KeyboardInterrupt):
    """The run stopped on a signal after saving its state; ``signum`` is the signal."""

    def __init__(self, signum: int, step: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name} after step {step}")
        self.signum, self.step = signum, step


class StopOnSignal:
    """Context manager: SIGINT and SIGTERM set :attr:`signum` instead of interrupting (main thread
    only; elsewhere signals keep their handlers)."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:  # asked twice: stop now
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> "StopOnSignal":
        if threading.current_thread() is threading.main_thread():
            self._previous = {number: signal.signal(number, self._handle) for number in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}
