"""Every top-level key of langgraph.json (the reference CLI's ``Config`` schema) and what this server
does with it: acted on, a start-up warning (build/deploy-only keys that change nothing at run time)
or a start-up error (keys whose absence of effect would change behaviour without a word).

``docs/langgraph-json.md`` is the user-facing table; the texts below are what the server says.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cogni_server.graphs.errors import GraphLoadError

# Read by a module of this server (graphs, dependencies, env: graphs.config; store: store_config;
# checkpointer.ttl, webhooks: webhooks_config; http: http_config; auth: the custom auth module).
HANDLED = ("$schema", "graphs", "dependencies", "env", "store", "checkpointer", "auth", "http", "webhooks")

# Build and image settings of the reference's Docker deployment: this server runs in the
# environment it is started in, so they change nothing here.
DEPLOY_ONLY = {
    "python_version": "the server runs on the Python it is started with",
    "node_version": "this server runs Python graphs only; a JS graph fails to load",
    "api_version": "this server implements the LangGraph Platform API itself, whatever version is named",
    "_INTERNAL_docker_tag": "no Docker image is built",
    "base_image": "no Docker image is built",
    "image_distro": "no Docker image is built",
    "pip_config_file": "dependencies are not installed by the server; install them into its environment",
    "pip_installer": "dependencies are not installed by the server; install them into its environment",
    "source": "dependencies are not installed by the server; install them into its environment",
    "dockerfile_lines": "no Docker image is built",
    "keep_pkg_tools": "no Docker image is built",
}

REFUSED = {
    "encryption": "custom at-rest encryption is not supported: data would be stored unencrypted",
    "priority": "custom run priority is not supported: runs are taken in creation order",
    "ui": "generative UI components are not served by this server (no /ui bundles)",
}

CHECKPOINTER_REFUSED = {
    "path": "a custom checkpointer is not supported: the server always checkpoints to its Postgres",
    "serde": "custom checkpoint serialisation settings are not supported",
}
CHECKPOINTER_KEYS = ("ttl", *CHECKPOINTER_REFUSED)


def check_keys(raw: Mapping[str, Any]) -> list[str]:
    """Raise GraphLoadError for an unknown or refused key; return the warnings to log at start-up."""
    known = (*HANDLED, *DEPLOY_ONLY, *REFUSED)
    if unknown := [key for key in raw if key not in known]:
        raise GraphLoadError(
            f"langgraph.json: unknown key(s) {unknown}: not in the LangGraph configuration schema"
            " (see docs/langgraph-json.md for every key this server reads)"
        )
    for key, why in REFUSED.items():
        if raw.get(key) not in (None, {}, []):
            raise GraphLoadError(f"langgraph.json: '{key}': {why}; remove the key to start")
    checkpointer = raw.get("checkpointer")
    if isinstance(checkpointer, dict):
        if extra := sorted(set(checkpointer) - set(CHECKPOINTER_KEYS)):
            raise GraphLoadError(f"langgraph.json: unknown key(s) in 'checkpointer': {extra}")
        for key, why in CHECKPOINTER_REFUSED.items():
            if checkpointer.get(key) not in (None, {}):
                raise GraphLoadError(f"langgraph.json: 'checkpointer.{key}': {why}; remove the key to start")
    auth = raw.get("auth")
    if auth is not None and not isinstance(auth, dict):
        raise GraphLoadError("langgraph.json: 'auth' must be an object")
    return [
        f"langgraph.json: '{key}' is ignored by this server ({why})" for key, why in DEPLOY_ONLY.items() if key in raw
    ]
