"""AppRuntime: what the routes reach through `request.app.state`, set by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from cogni_app.config import AppSettings
from cogni_app.services import AppServices


@dataclass(frozen=True)
class AppRuntime:
    settings: AppSettings  # the operator-token check reads it; the use cases get typed policies instead
    services: AppServices
