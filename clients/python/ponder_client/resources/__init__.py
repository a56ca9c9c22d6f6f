"""The resources of the API, each as a sync and an async class."""

from .batches import AsyncBatches, Batches
from .catalog import AsyncModels, AsyncStrategies, Models, Strategies
from .datasets import AsyncDatasets, Datasets
from .jobs import AsyncJobs, Jobs
from .keys import APIKeys, AsyncAPIKeys
from .schedules import AsyncSchedules, Schedules
from .system import AsyncSystem, System
from .webhooks import AsyncDeliveries, AsyncWebhookSecrets, Deliveries, WebhookSecrets

__all__ = [
    "APIKeys",
    "AsyncAPIKeys",
    "AsyncBatches",
    "AsyncDatasets",
    "AsyncDeliveries",
    "AsyncJobs",
    "AsyncModels",
    "AsyncSchedules",
    "AsyncStrategies",
    "AsyncSystem",
    "AsyncWebhookSecrets",
    "Batches",
    "Datasets",
    "Deliveries",
    "Jobs",
    "Models",
    "Schedules",
    "Strategies",
    "System",
    "WebhookSecrets",
]
