"""The chaos campaign, small: the whole topology as processes, two chats per fault, and the invariants.

`python -m bench.chaos` is the full campaign (docs/reliability.md), with the billing worker
(`cogni-app reconcile-worker`) beside the app as deployed. This runs it with two chats per
batch and every fault but the LiteLLM proxy restart (a cold start of the proxy takes 15 to 60 s on
this kind of machine, more than the rest of the campaign together; the full campaign covers it), and
asserts what a paying user and an operator would notice: no acknowledged run lost, nothing executed
or charged twice, every LLM call in the spend log charged exactly ceil(cost x markup x 10^7) after
the reconcile, no receipt without a spend-log row, and the balance moved by exactly what was charged.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.chaos.campaign import run_campaign
from bench.chaos.faults import FAULTS
from bench.chaos.topology import Topology

pytestmark = [pytest.mark.stack, pytest.mark.proxy, pytest.mark.integration, pytest.mark.timeout(420)]
CI_FAULTS = [f for f in FAULTS if f != "litellm-restart"]
STRUCK = {
    "kill9-runner": "kill -9 server",
    "sigterm-runner": "SIGTERM server",
    "postgres-restart": "postgres stopped",
    "redis-restart": "redis killed",
    "usage-dropped": "usage events dropped",
    "usage-duplicated": "duplicated",
    "app-kill": "app killed",
    "billing-worker-kill": "billing worker killed",
}


@pytest.fixture(scope="module")
def topology() -> Iterator[Topology]:
    topo = Topology()
    try:
        topo.start()
        yield topo
    finally:
        topo.close()


def test_no_run_lost_or_duplicated_and_every_call_billed_exactly_once_under_each_fault(topology: Topology) -> None:
    results = run_campaign(topology, CI_FAULTS, runs=2, max_minutes=6)

    assert [r.fault for r in results] == CI_FAULTS
    for result in results:
        v = result.verdict
        where = f"{result.fault}: notes={result.notes} evidence={v.evidence}"
        assert v.acknowledged >= 1, where  # the batch really ran chats
        assert v.llm_calls >= 1, where
        assert (v.lost, v.duplicated, v.unbilled, v.orphan_receipts, v.mismatched_credits) == (0, 0, 0, 0, 0), where
        assert v.charged == v.expected > 0 and v.balance_drift == 0, where
        assert not any("fault failed" in n or "no running run" in n for n in result.notes), where
        if result.fault in STRUCK:
            assert any(STRUCK[result.fault] in n for n in result.notes), where
    worker = topology.billing_worker
    assert worker is not None and worker.proc.poll() is None, "the billing worker rode every fault out"
    disconnects = next(r for r in results if r.fault == "client-disconnect")
    assert disconnects.client_done < disconnects.verdict.runs  # clients hung up before the end, and were billed in full
