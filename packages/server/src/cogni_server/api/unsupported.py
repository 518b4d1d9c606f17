"""The store is not implemented yet: it answers 404 with a message saying so."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

router = APIRouter(tags=["unsupported"], include_in_schema=False)
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@router.api_route("/store/{rest:path}", methods=_METHODS)
async def store(rest: str = "") -> None:
    raise HTTPException(404, detail="the store is not supported by this server yet")
