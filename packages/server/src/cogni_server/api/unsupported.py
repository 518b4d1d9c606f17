"""Crons are not implemented yet: they answer 404 with a message saying so."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

router = APIRouter(tags=["unsupported"], include_in_schema=False)
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@router.api_route("/runs/crons", methods=_METHODS)
@router.api_route("/runs/crons/{rest:path}", methods=_METHODS)
@router.api_route("/threads/{thread_id}/runs/crons", methods=_METHODS)
async def crons(rest: str = "", thread_id: str = "") -> None:
    raise HTTPException(404, detail="crons are not supported by this server yet")
