"""Personal notices to a buyer: order and shipment status changes, on /ws/me."""
