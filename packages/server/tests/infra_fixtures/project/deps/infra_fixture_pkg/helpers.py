"""Shared helpers the fixture graphs import from the dependency directory."""

import os


def greeting() -> str:
    """Read at run time, so the value proves the project's env file was applied."""
    return os.environ.get("INFRA_FIXTURE_GREETING", "no-env")
