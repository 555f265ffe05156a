"""``llmgate`` under cProfile, switched on and off by signals (for profile_gateway.py).

    python _profiled_gateway.py OUT.pstats serve --config ... --port ...

SIGUSR1 starts profiling (CPU time, not wall time: idle waits cost nothing), SIGUSR2
stops it and writes OUT.pstats, so start-up and warm-up stay out of the numbers.
"""

from __future__ import annotations

import cProfile
import signal
import sys
import time
from types import FrameType

from server.cli import main

_prof = cProfile.Profile(time.process_time)


def _start(signum: int, frame: FrameType | None) -> None:
    _prof.enable()


def _stop(signum: int, frame: FrameType | None) -> None:
    _prof.disable()
    _prof.dump_stats(sys.argv[1])


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, _start)
    signal.signal(signal.SIGUSR2, _stop)
    sys.exit(main(sys.argv[2:]))
