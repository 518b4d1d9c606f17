"""The campaign's table: one row per fault kind, as text for the terminal and Markdown for the docs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.chaos.checks import Verdict
from bench.stats import percentile

START_MARKER = "<!-- chaos-table:start -->"
END_MARKER = "<!-- chaos-table:end -->"
HEADERS = (
    "fault", "runs", "acked", "client saw error", "not acked, ran", "lost", "duplicated", "unbilled (app alone)",
    "unbilled after reconcile", "orphan receipts", "charged = spend log", "billing lag p50 / p99 (s)", "notes",
)  # fmt: skip


@dataclass
class BatchResult:
    """One batch: its fault, what the checks found, and what the app billed before the campaign's reconcile."""

    fault: str
    verdict: Verdict
    unbilled_before_reconcile: int
    seconds: float
    notes: list[str] = field(default_factory=list)
    client_done: int = 0
    client_errors: int = 0
    client_view: list[str] = field(default_factory=list)  # what the clients that saw a failure saw


def _lag(lags: list[float]) -> str:
    if not lags:
        return "-"
    return f"{percentile(lags, 50):.2f} / {percentile(lags, 99):.2f}"


def rows(results: list[BatchResult]) -> list[list[str]]:
    """Batches of the same fault summed into one row, in campaign order."""
    order: list[str] = []
    by_fault: dict[str, list[BatchResult]] = {}
    for result in results:
        if result.fault not in by_fault:
            order.append(result.fault)
        by_fault.setdefault(result.fault, []).append(result)
    table = []
    for fault in order:
        batch = by_fault[fault]
        verdicts = [b.verdict for b in batch]
        charged, expected = sum(v.charged for v in verdicts), sum(v.expected for v in verdicts)
        notes = sorted({n for b in batch for n in b.notes})
        drift = any(v.balance_drift for v in verdicts)
        agreed = "yes" if charged == expected and not drift else f"NO ({charged} vs {expected})"
        table.append(
            [
                fault,
                str(sum(v.runs for v in verdicts)),
                str(sum(v.acknowledged for v in verdicts)),
                str(sum(b.client_errors for b in batch)),
                str(sum(v.ran_unacknowledged for v in verdicts)),
                str(sum(v.lost for v in verdicts)),
                str(sum(v.duplicated for v in verdicts)),
                str(sum(b.unbilled_before_reconcile for b in batch)),
                str(sum(v.unbilled for v in verdicts)),
                str(sum(v.orphan_receipts for v in verdicts)),
                agreed,
                _lag([lag for v in verdicts for lag in v.lags_s]),
                "; ".join(notes)[:160],
            ]
        )
    return table


def text_table(results: list[BatchResult]) -> str:
    body = rows(results)
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(HEADERS)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))  # noqa: E731
    return "\n".join([line(HEADERS), line(["-" * w for w in widths]), *(line(r) for r in body)])


def markdown_table(results: list[BatchResult], header: str) -> str:
    lines = [header, "", "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in r) + " |" for r in rows(results)]
    return "\n".join(lines)


def write_between_markers(path: Path, content: str) -> None:
    """Replace what lies between the markers in `path` (append a marked section if there is none)."""
    text = path.read_text() if path.exists() else ""
    block = f"{START_MARKER}\n{content}\n{END_MARKER}"
    if START_MARKER in text and END_MARKER in text:
        before, rest = text.split(START_MARKER, 1)
        _, after = rest.split(END_MARKER, 1)
        text = before + block + after
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)
