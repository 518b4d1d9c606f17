"""Free loopback ports for test servers.

Asking the kernel for port 0 and closing the socket races: between the close and the moment the test's
server binds, another xdist worker (or any process) can be handed the same ephemeral port. Instead every
process on the machine draws from one shared counter (a file under a lock) over a range below the
kernel's ephemeral range, so no two callers get the same port until the range wraps, and the kernel
never hands these ports out on its own.
"""

import fcntl
import os
import socket
import tempfile
from pathlib import Path

FIRST_PORT = 20000
LAST_PORT = 31999
_COUNTER = Path(tempfile.gettempdir()) / "cogni-test-ports.counter"


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback port nobody listens on now and no other test process was given recently."""
    with open(_COUNTER, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        text = handle.read().strip()
        span = LAST_PORT - FIRST_PORT + 1
        start = int(text) if text.isdigit() else FIRST_PORT + os.getpid() % span
        for step in range(span):
            port = FIRST_PORT + (start - FIRST_PORT + step) % span
            if _bindable(port):
                handle.seek(0)
                handle.truncate()
                handle.write(str(FIRST_PORT + (port - FIRST_PORT + 1) % span))
                handle.flush()
                return port
    raise RuntimeError(f"no free loopback port in {FIRST_PORT}-{LAST_PORT}")
