"""Run LiteLLM's own CLI (`litellm ...` arguments) so that the sink flushes on SIGTERM.

uvicorn remembers the signal handlers present when it starts and, after its graceful shutdown,
restores them and re-raises the signal. With the default SIGTERM handler the process would die right
there, skipping `atexit` and with it the sink's final flush. Installing a handler first that turns
the re-raised signal into a normal exit lets queued rows reach Postgres. Run it with the proxy venv's
python: `<venv>/bin/python -m cogni_litellm_sink.serve --config config.yaml --port 4000`.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType


def _exit_normally(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main() -> None:
    signal.signal(signal.SIGTERM, _exit_normally)
    from litellm import run_server  # only present in the proxy's venv

    sys.argv[0] = "litellm"
    sys.exit(run_server())


if __name__ == "__main__":
    main()
