"""Rendering `langgraph.json` from the catalog, and checking a committed copy for drift."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cogni_graphs.catalog import CATALOG, CatalogEntry

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "langgraph.json"


def render_document(catalog: Mapping[str, CatalogEntry] = CATALOG) -> dict[str, Any]:
    """The langgraph.json document: `dependencies` (this package) and one `graphs` entry per catalog graph."""
    return {
        "dependencies": ["."],
        "graphs": {name: entry.langgraph_path for name, entry in catalog.items()},
    }


def render(catalog: Mapping[str, CatalogEntry] = CATALOG) -> str:
    """The file's exact text (2-space indent, trailing newline), so drift checks are byte-exact."""
    return json.dumps(render_document(catalog), indent=2) + "\n"


def drift(path: Path = DEFAULT_PATH, catalog: Mapping[str, CatalogEntry] = CATALOG) -> str:
    """A unified diff from the file on disk to what the catalog renders; empty when in sync."""
    expected = render(catalog)
    actual = path.read_text() if path.exists() else ""
    if actual == expected:
        return ""
    return (
        "".join(
            difflib.unified_diff(
                actual.splitlines(keepends=True),
                expected.splitlines(keepends=True),
                fromfile=f"{path} (committed)",
                tofile=f"{path} (from catalog)",
            )
        )
        or f"{path} differs from the catalog (whitespace only)\n"
    )


def write(path: Path = DEFAULT_PATH, catalog: Mapping[str, CatalogEntry] = CATALOG) -> bool:
    """Write the rendered file; True when it changed."""
    expected = render(catalog)
    if path.exists() and path.read_text() == expected:
        return False
    path.write_text(expected)
    return True
