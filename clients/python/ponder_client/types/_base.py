"""The base of every model of the API's bodies."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class PonderModel(BaseModel):
    """A body of Ponder's API. Fields a newer server adds are kept (in ``model_extra``)
    rather than refused, so an older client keeps working."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
