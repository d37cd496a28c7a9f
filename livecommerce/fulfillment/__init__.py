"""Shipments, customs declarations, carriers and tracking: what happens after an order."""
