"""Build what LangGraph needs for a run from its stored settings: input or Command, config, context."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langgraph.types import Command, Send

from cogni_server.auth.custom import USER_KEY, AuthUser
from cogni_server.runs.settings import RunSettings, load_run_settings


def build_command(command: dict[str, Any]) -> Command[Any]:
    """``{"resume", "update", "goto"}`` as sent by the clients -> a LangGraph Command."""
    goto = command.get("goto")
    if goto is not None:
        items = goto if isinstance(goto, list) else [goto]
        converted = [Send(g["node"], g.get("input")) if isinstance(g, dict) else g for g in items]
        goto = converted if isinstance(goto, list) else converted[0]
    update = command.get("update")
    if isinstance(update, list):
        update = [tuple(item) for item in update]
    kwargs: dict[str, Any] = {}
    if "resume" in command:
        kwargs["resume"] = command["resume"]
    if update is not None:
        kwargs["update"] = update
    if goto is not None:
        kwargs["goto"] = goto
    return Command(**kwargs)


def run_config(run: dict[str, Any], settings: RunSettings | None = None) -> dict[str, Any]:
    """The RunnableConfig of a run: assistant config merged under the run's, plus the run's identity."""
    settings = settings or load_run_settings(run["kwargs"])
    config: dict[str, Any] = dict(settings.config)
    configurable = dict(config.get("configurable") or {})
    run_id, thread_id = str(run["run_id"]), str(run["thread_id"])
    configurable.update(
        thread_id=thread_id,
        run_id=run_id,
        assistant_id=str(run["assistant_id"]),
        graph_id=run["graph_id"],
    )
    if "runId" in configurable:  # an app's run (GraphRunConfig): its LLM calls are billed per attempt, 0-based
        configurable["attempt"] = max(int(run["attempt"]) - 1, 0)
    checkpoint = settings.checkpoint or {}
    checkpoint_id = settings.checkpoint_id or checkpoint.get("checkpoint_id")
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    if checkpoint.get("checkpoint_ns"):
        configurable["checkpoint_ns"] = checkpoint["checkpoint_ns"]
    if isinstance(configurable.get(USER_KEY), dict):  # custom auth: the user, as graphs read it
        configurable[USER_KEY] = AuthUser(configurable[USER_KEY])
    config["configurable"] = configurable
    metadata = dict(config.get("metadata") or {})
    metadata.update(run.get("metadata") or {})
    metadata.update(
        run_id=run_id,
        thread_id=thread_id,
        graph_id=run["graph_id"],
        assistant_id=str(run["assistant_id"]),
        run_attempt=run["attempt"],
    )
    config["metadata"] = metadata
    config["run_id"] = run_id
    return config


def with_callback(config: dict[str, Any], handler: BaseCallbackHandler) -> dict[str, Any]:
    """The run's config with ``handler`` among its LangChain callbacks (a list, or the caller's manager)."""
    callbacks = config.get("callbacks")
    if isinstance(callbacks, list):
        config["callbacks"] = [*callbacks, handler]
    elif callbacks is None:
        config["callbacks"] = [handler]
    else:  # a callback manager from the caller's config: add ours to it
        callbacks.add_handler(handler, inherit=True)
    return config
