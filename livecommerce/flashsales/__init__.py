"""Flash sales: start, claim, release, end, the card rooms carry, and the admission gate.

The one owner of a sale's quantity, its per-customer claims and its life. Streams start and
end sales through it; orders claim and release units through it. It imports neither.
"""
