"""The parts of a user's data deletion (docs/compliance.md, `# The app`): the job table, the app's own rows,
the spend log's content, the Agent Server's purge. The use case that runs them is
`cogni_app.services.deletion`."""

from cogni_app.deletion.jobs import STATUS_TOKEN_PREFIX, STEPS, DeletionJobs, DeletionRecord, Requester
from cogni_app.deletion.reads import JOB_STATUSES, DeletionPage, DeletionReads
from cogni_app.deletion.server_purge import ServerPurge, ServerPurgeClient, ServerPurgeFailed
from cogni_app.deletion.spend_log import SpendLogScrubber

__all__ = [
    "JOB_STATUSES",
    "STATUS_TOKEN_PREFIX",
    "STEPS",
    "DeletionJobs",
    "DeletionPage",
    "DeletionReads",
    "DeletionRecord",
    "Requester",
    "ServerPurge",
    "ServerPurgeClient",
    "ServerPurgeFailed",
    "SpendLogScrubber",
]
