"""AppRuntime: the long-lived collaborators the routes use, built once per process by the lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from cogni_app.billing import Accounts, Ledger
from cogni_app.config import AppSettings
from cogni_app.executors import GraphExecutorPort
from cogni_app.models import ModelAllowlist
from cogni_app.reconcile import Reconciler
from cogni_app.relay import Relay


@dataclass
class AppRuntime:
    settings: AppSettings
    accounts: Accounts
    ledger: Ledger
    models: ModelAllowlist
    executor: GraphExecutorPort
    relay: Relay
    reconciler: Reconciler
