"""Background workers; the fulfilment tasks arrive with the Celery app."""
