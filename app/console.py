"""Terminal output shared by the CLI and the demo."""

from __future__ import annotations

import time
from typing import Callable


def progress_printer(enabled: bool) -> Callable[[str, int, int], None] | None:
    """A progress callback (for the ceremony and the launcher) that draws a bar on stdout."""
    if not enabled:
        return None
    started = time.monotonic()

    def show(what: str, done: int, total: int) -> None:
        width = 24
        filled = width * done // max(total, 1)
        print(f"  [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {what} ({time.monotonic() - started:.1f} s)", flush=True)

    return show
