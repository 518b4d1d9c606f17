"""`python -m cogni_mock_llm --port N [--host H] [--token-delay-ms X] [--hang-seconds S]`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import uvicorn

from cogni_mock_llm.app import create_app
from cogni_mock_llm.settings import MockSettings


def main(argv: Sequence[str] | None = None) -> None:
    defaults = MockSettings()
    parser = argparse.ArgumentParser(prog="cogni_mock_llm", description="Deterministic OpenAI-compatible mock")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4010)
    parser.add_argument(
        "--token-delay-ms", type=float, default=defaults.token_delay_ms, help="pause between streamed tokens"
    )
    parser.add_argument("--hang-seconds", type=float, default=defaults.hang_seconds, help="how long [mock:hang] hangs")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    settings = MockSettings(token_delay_ms=args.token_delay_ms, hang_seconds=args.hang_seconds)
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        timeout_graceful_shutdown=1,
    )


if __name__ == "__main__":
    main()
