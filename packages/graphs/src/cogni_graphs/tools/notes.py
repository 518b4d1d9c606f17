"""`core__search_notes`: keyword search over a small bundled corpus (offline, deterministic)."""

import json
import re
from functools import cache
from importlib import resources
from typing import Any

from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field

from cogni_graphs.tools.errors import ToolArgumentError

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset({"a", "an", "and", "the", "of", "to", "in", "is", "it", "its", "by", "what", "how", "for", "on"})


class SearchNotesArgs(BaseModel):
    query: str = Field(description="Keywords to look for", min_length=1, max_length=200)
    limit: int = Field(default=3, ge=1, le=10, description="Most notes to return")


@cache
def corpus() -> tuple[dict[str, str], ...]:
    """The bundled notes (id, title, text)."""
    raw = resources.files("cogni_graphs.tools").joinpath("notes.json").read_text(encoding="utf-8")
    return tuple(json.loads(raw))


def _terms(text: str) -> set[str]:
    return {word for word in _WORD.findall(text.lower()) if word not in _STOP}


def search_notes_sync(query: str, limit: int = 3) -> list[dict[str, Any]]:
    """Notes ranked by how many query terms they contain (title terms count double); ties by id."""
    terms = _terms(query)
    if not terms:
        raise ToolArgumentError(f"query {query!r} has no searchable words")
    scored = []
    for note in corpus():
        score = len(terms & _terms(note["text"])) + 2 * len(terms & _terms(note["title"]))
        if score:
            scored.append((score, note))
    scored.sort(key=lambda item: (-item[0], item[1]["id"]))
    return [{"id": n["id"], "title": n["title"], "text": n["text"], "score": s} for s, n in scored[:limit]]


async def search_notes(query: str, limit: int = 3) -> dict[str, Any]:
    """Search the notes; `matches` is empty when nothing fits."""
    return {"query": query, "matches": search_notes_sync(query, limit)}


search_notes_tool = StructuredTool.from_function(
    coroutine=search_notes,
    name="core__search_notes",
    description="Search the bundled knowledge notes by keywords; returns the best matching notes.",
    args_schema=SearchNotesArgs,
)
