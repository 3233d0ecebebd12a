"""Kill an embedded server's process group once the process that owns it is gone.

Run as ``python _watchdog.py SERVER_PGID`` in its own session with stdin a pipe whose write end
only the owner holds. When the owner dies in any way (even SIGKILL), the kernel closes that end,
the read below returns EOF, and the group gets SIGTERM, then SIGKILL after a grace period. SIGINT is
ignored: a terminal Ctrl-C is the owner's to handle. Standard library only: it must start fast.
"""

import os
import signal
import sys
import time


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def main(pgid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while sys.stdin.buffer.read(1):
        pass
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _group_exists(pgid):
            time.sleep(0.2)


if __name__ == "__main__":
    main(int(sys.argv[1]))
