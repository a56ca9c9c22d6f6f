"""How long a test lets a step run before calling it hung.

No test asserts how fast anything is: speed is a figure printed by a script in
``bench/``. A test bounds a step's time only to tell a hang or a blow-up (quadratic or
exponential time on hostile input, a timeout that never fires, a wait that is not
woken) from a correct run. Such a failure takes minutes or forever, a correct run
milliseconds to a second or two, so the bounds sit far from both: at least ten times
what the step takes on a loaded 2-core machine, where load alone never trips them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

# hostile input that a linear algorithm reads in milliseconds, a quadratic one in
# minutes (bench/hostile.py prints the figures)
BLOWUP_SECONDS = 20.0


@contextmanager
def finishes_within(seconds: float, what: str) -> Iterator[None]:
    """Fail if the block takes ``seconds`` or more: it hung or blew up."""
    started = time.monotonic()
    yield
    took = time.monotonic() - started
    assert took < seconds, f"{what} took {took:.1f} s (bound {seconds:g} s): a hang or a blow-up"
