"""Progress bars of the training loops (tqdm, imported only when a bar is shown)."""

from __future__ import annotations

import sys


def progress_bar(enabled: bool, total: int, initial: int, desc: str):
    """A tqdm bar on stderr (refreshed every 30 s when stderr is not a terminal), or None when
    ``enabled`` is false."""
    if not enabled:
        return None
    from tqdm import tqdm
    tty = sys.stderr.isatty()
    return tqdm(total=total, initial=initial, desc=desc, leave=False, mininterval=0.5 if tty else 30.0,
                file=sys.stderr)
