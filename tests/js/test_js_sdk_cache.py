"""The JS SDK cache: installed once (marker last), a failed npm leaves nothing and says why."""

from __future__ import annotations

from pathlib import Path

import pytest

from .js_sdk_cache import JS_SDK_PACKAGE, JsSdkUnavailable, ensure_js_sdk

FAKE_NPM_OK = f"""#!/bin/sh
echo call >> "$FAKE_NPM_CALLS"
mkdir -p node_modules/{JS_SDK_PACKAGE}
echo '{{}}' > node_modules/{JS_SDK_PACKAGE}/package.json
"""
FAKE_NPM_OFFLINE = """#!/bin/sh
echo "npm error code ENOTFOUND" >&2
echo "npm error network request to https://registry.npmjs.org failed" >&2
exit 1
"""


def _fake_npm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text(script)
    npm.chmod(0o755)
    calls = tmp_path / "calls"
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")  # the fake npm first
    monkeypatch.setenv("FAKE_NPM_CALLS", str(calls))
    monkeypatch.setenv("COGNI_CACHE_DIR", str(tmp_path / "cache"))
    return calls


def test_installs_once_then_reuses_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_npm(tmp_path, monkeypatch, FAKE_NPM_OK)
    first = ensure_js_sdk("9.9.9")
    assert first == tmp_path / "cache" / "js-sdk-9.9.9"
    assert (first / "installed.json").is_file()
    assert ensure_js_sdk("9.9.9") == first
    assert calls.read_text().count("call") == 1


def test_unreachable_registry_fails_clearly_and_leaves_no_marker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_npm(tmp_path, monkeypatch, FAKE_NPM_OFFLINE)
    with pytest.raises(JsSdkUnavailable, match="registry reachable") as info:
        ensure_js_sdk("9.9.9")
    assert "ENOTFOUND" in str(info.value)
    assert not (tmp_path / "cache" / "js-sdk-9.9.9").exists()
