"""Server-Sent Events, decoded line by line (the same decoder serves the sync and the
async client)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SSEMessage:
    """One message of an event stream: its ``id``, ``event`` name and ``data``."""

    id: str | None
    event: str
    data: str


@dataclass
class SSEDecoder:
    """Feed it a stream's lines (without their line ending); it returns each message as
    the blank line that ends it arrives. Comments (keep-alives) are skipped."""

    _id: str | None = None
    _event: str = "message"
    _data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> SSEMessage | None:
        if not line:
            message = None
            if self._data:
                message = SSEMessage(self._id, self._event, "\n".join(self._data))
            self._id, self._event, self._data = None, "message", []
            return message
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id":
            self._id = value
        elif name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None
