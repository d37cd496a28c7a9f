"""Which warehouse ships which part of a basket.

The strategy, per line of the basket:

1. Rank the warehouses that have a route to the destination by delivery time (days), then
   by the route's cost for a 1 kg parcel, then by code, so the choice is deterministic.
2. Take the whole line from the first warehouse in that ranking that holds enough stock.
3. If no single warehouse holds enough, split the line: take what the fastest one holds,
   then the next, until the quantity is covered.
4. If all of them together hold too little, the line is short and the order cannot be
   placed (``Shortage``).

Each warehouse used becomes one shipment, so a basket may ship partly from Duisburg and
partly from Almaty. Stock numbers here are a snapshot; the reservation that follows is a
conditional update in the database, which is what actually guarantees no overselling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Shortage(Exception):
    product_id: int
    requested: int
    available: int


def allocate(
    lines: Sequence[tuple[int, int]],
    stock: Mapping[int, Mapping[str, int]],
    ranking: Sequence[str],
) -> dict[int, list[tuple[str, int]]]:
    """``{product_id: [(warehouse, quantity), ...]}`` for ``lines`` of ``(product_id, qty)``.

    A product listed twice is allocated as one line with the summed quantity.
    """
    wanted: dict[int, int] = {}
    for product_id, quantity in lines:
        wanted[product_id] = wanted.get(product_id, 0) + quantity
    result: dict[int, list[tuple[str, int]]] = {}
    for product_id, quantity in wanted.items():
        held = stock.get(product_id, {})
        whole = next((code for code in ranking if held.get(code, 0) >= quantity), None)
        if whole is not None:
            result[product_id] = [(whole, quantity)]
            continue
        parts: list[tuple[str, int]] = []
        left = quantity
        for code in ranking:
            take = min(left, held.get(code, 0))
            if take > 0:
                parts.append((code, take))
                left -= take
            if left == 0:
                break
        if left > 0:
            raise Shortage(product_id, quantity, quantity - left)
        result[product_id] = parts
    return result
