"""argparse types shared by the search-side command lines."""
from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """A count (hits, threads, batch size, thoughts, tokens): 0 or less would search or score nothing
    and report zeros, so it is refused where it is typed."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
