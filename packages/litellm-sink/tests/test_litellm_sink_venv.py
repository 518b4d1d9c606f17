"""The cached LiteLLM venv: installed once per version, guarded by a lock, redone after a crash."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from cogni_litellm_sink import venv as venv_module
from cogni_litellm_sink.venv import ensure_litellm_venv


@pytest.fixture
def fake_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace the real (slow) install with one that records calls and makes a `litellm` script."""
    calls: list[str] = []

    def install(venv: Path, version: str, timeout: float) -> None:
        calls.append(version)
        time.sleep(0.2)  # long enough for a second caller to arrive while the first installs
        (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "litellm").write_text("#!/bin/sh\n")

    monkeypatch.setenv("COGNI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(venv_module, "_install", install)
    return calls


def test_two_concurrent_callers_install_once(fake_install: list[str], tmp_path: Path) -> None:
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(ensure_litellm_venv("9.9.9"))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert fake_install == ["9.9.9"]
    assert results == [tmp_path / "cache" / "litellm-9.9.9" / "venv"] * 2
    marker = json.loads((tmp_path / "cache" / "litellm-9.9.9" / "installed.json").read_text())
    assert marker["version"] == "9.9.9"


def test_versions_are_cached_separately_and_reused(fake_install: list[str]) -> None:
    first = ensure_litellm_venv("1.0.0")
    assert ensure_litellm_venv("1.0.0") == first
    assert ensure_litellm_venv("2.0.0") != first
    assert fake_install == ["1.0.0", "2.0.0"]


def test_a_half_finished_install_is_redone(fake_install: list[str], tmp_path: Path) -> None:
    leftover = tmp_path / "cache" / "litellm-3.0.0" / "venv" / "bin"
    leftover.mkdir(parents=True)
    (leftover / "litellm").write_text("broken")  # no marker: the previous install died
    ensure_litellm_venv("3.0.0")
    assert fake_install == ["3.0.0"]
    assert (leftover / "litellm").read_text() == "#!/bin/sh\n"


def test_a_failed_install_leaves_no_marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(venv: Path, version: str, timeout: float) -> None:
        raise RuntimeError("resolver said no")

    monkeypatch.setenv("COGNI_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(venv_module, "_install", broken)
    with pytest.raises(RuntimeError, match="resolver said no"):
        ensure_litellm_venv("4.0.0")
    assert not (tmp_path / "litellm-4.0.0" / "installed.json").exists()
