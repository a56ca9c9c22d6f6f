"""The simulated model's tokenizer: one token per started 4 bytes of UTF-8, plus a few
tokens of chat-template framing per message. The sim's usage, context window and every
skill's token allowance are counted with it."""

from __future__ import annotations

from ponder.llm.base import Message

BYTES_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4  # chat-template framing per message


def count_tokens(text: str) -> int:
    """The sim tokenizer: one token per started 4 bytes of UTF-8."""
    return -(-len(text.encode("utf-8")) // BYTES_PER_TOKEN)


def truncate_to_tokens(text: str, max_tokens: int) -> str:
    """The longest prefix of ``text`` that is at most ``max_tokens`` sim tokens."""
    cut = text.encode("utf-8")[: max(max_tokens, 0) * BYTES_PER_TOKEN]
    return cut.decode("utf-8", errors="ignore")  # drop a split multi-byte character


def prompt_tokens(messages: list[Message]) -> int:
    return sum(count_tokens(m["content"]) + MESSAGE_OVERHEAD_TOKENS for m in messages)


__all__ = [
    "BYTES_PER_TOKEN",
    "MESSAGE_OVERHEAD_TOKENS",
    "count_tokens",
    "prompt_tokens",
    "truncate_to_tokens",
]
