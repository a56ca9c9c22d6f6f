"""Webhooks per Standard Webhooks: the outbox rows, signing, the SSRF guard, and sending
with retries."""
