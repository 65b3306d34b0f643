"""Running a trainer on a thread of its own in a test, and waiting for what it does."""
from __future__ import annotations

import threading
import time


def start(trainer, steps=None):
    """``trainer.run(steps)`` on a daemon thread; returns the thread and a box that gets "result" or "error"."""
    box = {}

    def target():
        try:
            box["result"] = trainer.run(steps)
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


def wait_for(predicate, timeout=20.0):
    """Whether ``predicate()`` became true within ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.002)
    return False
