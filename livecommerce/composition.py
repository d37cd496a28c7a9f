"""The one place that says which domain lends which hook to another (livecommerce/wiring.py).

The API process (``create_app``) and every worker process (``workers.runtime.Runtime``)
wire their sessions with ``wire``, so an order cancelled in either withdraws its parcels,
whichever modules the process imported. What only one process listens for is passed in
by it, under its own name (``ProcessListeners``).
"""

from __future__ import annotations

from livecommerce.fulfillment import service as fulfillment
from livecommerce.jobs import JobQueue
from livecommerce.wiring import DomainHooks, ProcessListeners, Wiring


def domain_hooks() -> DomainHooks:
    # Cancelling or refunding an order withdraws its parcels that no carrier has yet.
    return DomainHooks(order_closing=(fulfillment.withdraw_shipments,))


def wire(jobs: JobQueue, listeners: ProcessListeners) -> Wiring:
    """A process's wiring: the domain hooks, its job queue and its own listeners (the API
    process's ``app.api_listeners``; a worker's ``wiring.NO_LISTENERS``)."""
    return Wiring(hooks=domain_hooks(), jobs=jobs, listeners=listeners)
