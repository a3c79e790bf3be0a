"""SIGINT/SIGTERM during training: finish the step, save, stop."""

import signal
from typing import Any


class StopSignals:
    """Within the block, SIGINT/SIGTERM set `signum` (training saves and stops after the step);
    a second signal raises KeyboardInterrupt at once. Outside the main thread: no handling."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def signalled(self) -> bool:
        """Whether a signal came (the `stop` callable training and validation poll)."""
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def __enter__(self) -> "StopSignals":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
