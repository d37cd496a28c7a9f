"""Room names on the broker: the one place that spells them."""


def stream_room(stream_id: int) -> str:
    return f"stream:{stream_id}"
