"""Background work for a user interface, without Qt: :class:`ThreadRunner`.

Inside Slicer the main thread holds Python's global lock while Qt runs, so a Python worker thread
advances only while the main thread waits in Python code that releases the lock. The runner's
:meth:`ThreadRunner.poll` therefore *waits* for the worker with ``thread.join(timeout)`` (which
releases the lock) instead of returning at once: called from a short timer (the module polls every
10 ms and waits up to 40 ms), the worker gets most of the time while the interface still repaints
between polls. Only work that runs the image encoder goes to a thread at all
(:meth:`SegAnyPETLib.slicer_steps.SessionSteps._needsEncoder`); decoder-only clicks run at once.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Optional, Tuple

Work = Callable[[], Any]
Done = Callable[[Any, Optional[BaseException]], None]


class ThreadRunner:
    """``runner(work, done)``: ``work()`` runs in a thread; :meth:`poll` (main thread) delivers ``done(result, error)``.

    Args:
        onProgress: ``callback(fraction, text)``, called by :meth:`poll` with the last reported progress.
        onStateChanged: ``callback()`` when work starts and after its ``done`` ran.
        waitSeconds: how long one :meth:`poll` waits for the worker (the worker runs meanwhile).
    """

    def __init__(self, onProgress: Optional[Callable[[float, str], None]] = None,
                 onStateChanged: Optional[Callable[[], None]] = None, waitSeconds: float = 0.04) -> None:
        self.onProgress = onProgress
        self.onStateChanged = onStateChanged
        self.waitSeconds = waitSeconds
        self.cancelRequested = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._done: Optional[Done] = None
        self._outcome: Tuple[Any, Optional[BaseException]] = (None, None)
        self._progress: Optional[Tuple[float, str]] = None

    @property
    def running(self) -> bool:
        """Work was started and its ``done`` has not run yet."""
        return self._done is not None

    def __call__(self, work: Work, done: Done) -> None:
        if self.running:
            raise RuntimeError("the runner is busy: one computation at a time")
        self.cancelRequested.clear()
        self._done = done
        self._outcome = (None, None)
        self._progress = (0.0, "Working...")
        self._thread = threading.Thread(target=self._target, args=(work,), name="SegAnyPET", daemon=True)
        self._thread.start()
        if self.onStateChanged is not None:
            self.onStateChanged()

    def report(self, fraction: float, text: str) -> None:
        """Progress from any thread; shown at the next poll."""
        self._progress = (fraction, text)

    def cancel(self) -> None:
        """Ask the work to stop (it checks :attr:`cancelRequested`, or the caller cancels the session)."""
        self.cancelRequested.set()

    def poll(self, wait: Optional[float] = None) -> bool:
        """Wait up to ``wait`` seconds (default :attr:`waitSeconds`) for the work, releasing the GIL,
        then show progress; if the work ended, run its ``done`` here. True when ``done`` ran."""
        if self._thread is not None and self._done is not None:
            self._thread.join(self.waitSeconds if wait is None else wait)
        progress, self._progress = self._progress, None
        if progress is not None and self.onProgress is not None:
            self.onProgress(*progress)
        if self._done is None or self._thread is None or self._thread.is_alive():
            return False
        done, self._done = self._done, None
        result, error = self._outcome
        self._outcome = (None, None)
        try:
            done(result, error)  # may start the next work
        finally:
            if self.onStateChanged is not None:
                self.onStateChanged()
        return True

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Poll until no work is left (``done`` may start more) or ``timeout`` seconds passed; True if idle."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.running:
            if deadline is not None and time.monotonic() > deadline:
                return False
            self.poll(0.05)
        return True

    def _target(self, work: Work) -> None:
        try:
            self._outcome = (work(), None)
        except BaseException as error:  # delivered to done() on the main thread
            self._outcome = (None, error)
