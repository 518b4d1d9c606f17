"""Importing a graph's module and classifying what the attribute is.

File modules are imported under a stable, unique name (``cogni_user_graph_<stem>_<hash of path>``)
and registered in ``sys.modules`` before execution, so pickling, dataclasses and typing that look a
module up by name work, and two files with the same stem never clash.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from enum import Enum
from pathlib import Path
from types import ModuleType
from typing import Any

from langgraph.graph import StateGraph
from langgraph.pregel import Pregel

from cogni_server.graphs.config import GraphLoadError, GraphSpec, parse_spec


class GraphKind(Enum):
    COMPILED = "compiled"
    STATE_GRAPH = "state_graph"
    FACTORY = "factory"


def module_name_for(file: Path) -> str:
    """Stable per path, unique across files with the same stem."""
    stem = re.sub(r"\W", "_", file.stem)
    digest = hashlib.sha1(str(file).encode()).hexdigest()[:10]
    return f"cogni_user_graph_{stem}_{digest}"


def import_spec_module(spec: GraphSpec) -> ModuleType:
    """Import the module a spec points at (once per process; later calls reuse sys.modules)."""
    if spec.module is not None:
        try:
            return importlib.import_module(spec.module)
        except Exception as exc:
            raise GraphLoadError(
                f"{spec.label}: cannot import module {spec.module!r}: {type(exc).__name__}: {exc}"
            ) from exc
    assert spec.file is not None
    name = module_name_for(spec.file)
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, spec.file)
    if module_spec is None or module_spec.loader is None:
        raise GraphLoadError(f"{spec.label}: cannot load {spec.file} as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise GraphLoadError(f"{spec.label}: error importing {spec.file}: {type(exc).__name__}: {exc}") from exc
    return module


def load_attr(spec: GraphSpec) -> tuple[GraphKind, Any]:
    """The spec's attribute and what kind of thing it is; anything else is a GraphLoadError."""
    module = import_spec_module(spec)
    try:
        obj = getattr(module, spec.attr)
    except AttributeError:
        raise GraphLoadError(f"{spec.label}: {spec.spec!r}: module has no attribute {spec.attr!r}") from None
    return classify(spec.graph_id, obj), obj


def classify(graph_id: str, obj: Any) -> GraphKind:
    if isinstance(obj, Pregel):
        return GraphKind.COMPILED
    if isinstance(obj, StateGraph):
        return GraphKind.STATE_GRAPH
    if callable(obj):
        return GraphKind.FACTORY
    raise GraphLoadError(
        f"graph {graph_id!r}: expected a compiled graph, a StateGraph or a factory function, got {type(obj).__name__}"
    )


def load_object(config: Path, what: str, value: str) -> Any:
    """The object an import spec of langgraph.json names (``"./file.py:attr"`` or ``"pkg.mod:attr"``)."""
    spec = parse_spec(config, what, value)
    module = import_spec_module(spec)
    try:
        return getattr(module, spec.attr)
    except AttributeError:
        raise GraphLoadError(f"{what}: {value!r}: module has no attribute {spec.attr!r}") from None
