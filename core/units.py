"""Units gen reports losses in: nats per character (what training minimises) and bits per character."""

import math

LN2 = math.log(2)  # nats per bit


def bpc(nats: float) -> float:
    """Bits per character of a loss in nats per character."""
    return nats / LN2
