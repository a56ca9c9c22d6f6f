"""Webhooks per Standard Webhooks: the outbox rows, signing, the SSRF guard, and sending
with retries; :mod:`ponder.webhooks.service` holds the use cases the API serves (signing
secrets, deliveries, redelivery)."""
