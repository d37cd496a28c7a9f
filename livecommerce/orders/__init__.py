"""Quotes, orders with atomic stock reservation, idempotency and payments."""
