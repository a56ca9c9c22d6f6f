"""A problem as clients submit it: a task instance or a free-form prompt. The messages
that pose it to a model come from :func:`ponder.families.messages_for`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str = Field(pattern="^(system|user|assistant)$")
    content: str = Field(max_length=200_000)


class Problem(BaseModel):
    """Either ``task`` + ``input`` (a known task family) or ``prompt`` / ``messages``."""

    model_config = ConfigDict(extra="forbid")

    task: str | None = Field(default=None, description="Task family, e.g. `game24`.")
    input: dict[str, Any] | None = Field(
        default=None, description='The task instance, e.g. `{"numbers": [4, 9, 10, 13]}`.'
    )
    prompt: str | None = Field(default=None, max_length=200_000, description="Free-form prompt.")
    messages: list[ChatMessage] | None = Field(
        default=None, max_length=200, description="Free-form chat messages."
    )
    expected: Any = Field(default=None, description="The known answer, if any.")

    @model_validator(mode="after")
    def _one_form(self) -> Problem:
        forms = [self.task is not None, self.prompt is not None, self.messages is not None]
        if sum(forms) != 1:
            raise ValueError("give exactly one of `task` (with `input`), `prompt` or `messages`")
        if self.task is not None and self.input is None:
            raise ValueError("a `task` problem needs its `input`")
        if self.messages is not None and not self.messages:
            raise ValueError("`messages` must not be empty")
        return self
