"""Reading a LangGraph project's ``langgraph.json``: graph specs, ``dependencies`` and ``env``.

Rules (the same a LangGraph project expects from the reference server):
- ``graphs`` maps a graph id to ``"./relative/file.py:attr"`` (relative to the langgraph.json
  directory), ``"package.module:attr"`` (importable), or ``{"path": <either>, ...}``.
- ``dependencies`` entries that are paths (``"."``, ``"./x"``, absolute) are put on ``sys.path``; a
  ``src/`` directory inside one is added too (src layout). Other entries name packages that must
  already be installed; they are not installed here.
- ``env`` is a dict or the path of a ``.env`` file. Variables already set in the process environment
  win (the operator's environment overrides the project's defaults).
- ``http`` is parsed by ``http_config``; ``auth`` is kept as given for the custom auth module; every
  other key is checked by ``project_keys`` (unknown or not implemented: an error; build-only: a warning).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from cogni_server.graphs.errors import GraphLoadError
from cogni_server.graphs.http_config import HttpConfig, parse_http
from cogni_server.graphs.project_keys import check_keys

__all__ = [
    "GraphLoadError",
    "GraphSpec",
    "ProjectConfig",
    "apply_project_environment",
    "parse_spec",
    "read_project_config",
]
log = logging.getLogger("cogni_server.config")
GRAPH_DEF_KEYS = ("path", "description")


@dataclass(frozen=True)
class GraphSpec:
    """Where one graph lives: a file (``file`` set) or an importable module (``module`` set)."""

    graph_id: str
    spec: str
    attr: str
    file: Path | None = None
    module: str | None = None
    description: str | None = None

    @property
    def label(self) -> str:
        """How errors name it: ``graph 'agent'``, or the key of another block (``http.app``)."""
        return f"graph {self.graph_id!r}" if "." not in self.graph_id else self.graph_id


@dataclass(frozen=True)
class ProjectConfig:
    """The parts of langgraph.json the server acts on, plus the raw document for the rest."""

    path: Path
    graphs: dict[str, GraphSpec]
    dependencies: list[Path]
    env: dict[str, str]
    raw: dict[str, Any]
    http: HttpConfig = field(default_factory=HttpConfig)
    auth: dict[str, Any] | None = None  # the raw ``auth`` block, for the custom auth module
    warnings: tuple[str, ...] = ()  # logged at start-up: keys that change nothing on this server


def read_project_config(config_path: Path) -> ProjectConfig:
    """Parse and validate langgraph.json; every problem is a GraphLoadError naming the culprit."""
    path = Path(config_path).resolve()
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise GraphLoadError(f"LangGraph config not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise GraphLoadError(f"cannot read LangGraph config {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise GraphLoadError(f"{path}: expected a JSON object at the top level")
    base = path.parent
    warnings = check_keys(raw)
    for warning in warnings:
        log.warning("%s", warning)
    graphs_raw = raw.get("graphs")
    if not isinstance(graphs_raw, dict) or not graphs_raw:
        raise GraphLoadError(f"{path}: 'graphs' must be a non-empty object mapping graph id to 'path:attr'")
    graphs = {gid: _parse_graph_spec(path, base, gid, value) for gid, value in graphs_raw.items()}
    return ProjectConfig(
        path=path,
        graphs=graphs,
        dependencies=_dependency_paths(path, base, raw.get("dependencies", [])),
        env=_env(path, base, raw.get("env")),
        raw=raw,
        http=parse_http(raw.get("http"), base),
        auth=raw.get("auth"),
        warnings=tuple(warnings),
    )


def _parse_graph_spec(config: Path, base: Path, graph_id: str, value: Any) -> GraphSpec:
    description = None
    if isinstance(value, dict):
        if unknown := set(value) - set(GRAPH_DEF_KEYS):
            raise GraphLoadError(
                f"{config}: graph {graph_id!r}: unknown key(s) {sorted(unknown)}; known: path, description"
            )
        description = value.get("description")
        value = value.get("path")
    label = GraphSpec(graph_id, "", "").label
    if not isinstance(value, str) or ":" not in value:
        raise GraphLoadError(f"{config}: {label} must be './file.py:attr' or 'package.module:attr', got {value!r}")
    location, _, attr = value.rpartition(":")
    if not location or not attr.isidentifier():
        raise GraphLoadError(f"{config}: {label}: invalid spec {value!r}")
    if _looks_like_path(location):
        file = (base / location).resolve()
        if not file.is_file():
            raise GraphLoadError(f"{config}: {label}: file not found: {file}")
        return GraphSpec(graph_id, value, attr, file=file, description=description)
    return GraphSpec(graph_id, value, attr, module=location, description=description)


def parse_spec(config: Path, what: str, value: Any) -> GraphSpec:
    """An import spec of another block (e.g. ``http.app``), resolved like a graph's, beside ``config``."""
    return _parse_graph_spec(config, config.parent, what, value)


def _looks_like_path(location: str) -> bool:
    return location.endswith(".py") or location.startswith((".", "/")) or "/" in location or "\\" in location


def _dependency_paths(config: Path, base: Path, deps: Any) -> list[Path]:
    if not isinstance(deps, list):
        raise GraphLoadError(f"{config}: 'dependencies' must be a list")
    paths: list[Path] = []
    for dep in deps:
        if not isinstance(dep, str):
            raise GraphLoadError(f"{config}: dependency {dep!r} must be a string")
        if not (dep.startswith((".", "/")) or (base / dep).is_dir()):
            continue  # a package requirement: must already be installed
        resolved = (base / dep).resolve()
        if not resolved.is_dir():
            raise GraphLoadError(f"{config}: dependency path not found: {resolved}")
        paths.append(resolved)
        if (resolved / "src").is_dir():
            paths.append(resolved / "src")
    return paths


def _env(config: Path, base: Path, env: Any) -> dict[str, str]:
    if env is None:
        return {}
    if isinstance(env, dict):
        return {str(k): str(v) for k, v in env.items()}
    if isinstance(env, str):
        env_file = (base / env).resolve()
        if not env_file.is_file():
            raise GraphLoadError(f"{config}: env file not found: {env_file}")
        return {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    raise GraphLoadError(f"{config}: 'env' must be an object or the path of a .env file")


def apply_project_environment(project: ProjectConfig) -> None:
    """Put dependency paths on sys.path (first, once) and set env vars not already set."""
    for dep in reversed(project.dependencies):
        entry = str(dep)
        if entry not in sys.path:
            sys.path.insert(0, entry)
    for key, value in project.env.items():
        os.environ.setdefault(key, value)
