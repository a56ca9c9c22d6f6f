"""The request and response bodies of Ponder's API as pydantic models.

The models of ``_models`` are generated from the API document; ``BatchResult`` and
``WebhookEvent`` are the two bodies it describes only in words."""

from ._base import PonderModel as PonderModel
from ._extras import TERMINAL_JOB_STATUSES as TERMINAL_JOB_STATUSES
from ._extras import BatchResult as BatchResult
from ._extras import BatchStatus as BatchStatus
from ._extras import JobStatus as JobStatus
from ._extras import ScheduleRunStatus as ScheduleRunStatus
from ._extras import Scope as Scope
from ._extras import WebhookEvent as WebhookEvent
from ._models import *  # noqa: F403
