"""Namespaced graph ids (`provider:name`): the same id names the same graph on every executor."""

import re
from dataclasses import dataclass

_PART = re.compile(r"^[a-z][a-z0-9_-]*$")
DEFAULT_GRAPH_ID = "langgraph:chat"


class InvalidGraphId(ValueError):
    """A graph id that is not `provider:name`."""


@dataclass(frozen=True)
class GraphId:
    provider: str
    name: str

    def __str__(self) -> str:
        return f"{self.provider}:{self.name}"


def parse_graph_id(value: str) -> GraphId:
    """Split `provider:name`, rejecting anything else with a message that says what is wrong."""
    provider, sep, name = value.partition(":")
    if not sep:
        raise InvalidGraphId(f"graph id {value!r} must be 'provider:name', e.g. 'langgraph:chat'")
    if not _PART.match(provider) or not _PART.match(name):
        raise InvalidGraphId(f"graph id {value!r}: provider and name must be lowercase letters, digits, '_' or '-'")
    return GraphId(provider, name)
