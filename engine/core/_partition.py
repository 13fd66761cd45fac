"""Which process takes a lead, and whether a lead is in a preview sample: both by a hash of the lead id.

A lead's events depend on each other (its state carries from one to the next) while leads do not, so
work split by lead can run in any number of processes and still give each lead the same answer. The
hash is crc32 because it is the same in every process and on every run (Python's `hash` of a string is
salted per process), so the split, and the sample, can be repeated.
"""
from __future__ import annotations

import zlib

_SAMPLE_SALT = b"leadflow-sample:"  # the sample draws on other bits than the split, so it is not one share
_SPAN = 1 << 32


def _id_bytes(lead: str) -> bytes:
    return lead.encode("utf-8", "surrogatepass")


def lead_share(lead: str, parts: int) -> int:
    """The part (0 .. parts-1) that holds `lead` when the leads are split `parts` ways."""
    return zlib.crc32(_id_bytes(lead)) % parts


def in_sample(lead: str, fraction: float) -> bool:
    """Whether `lead` is in the sample of about `fraction` (0 < fraction <= 1) of all leads; the same leads
    every time, and a smaller fraction's sample lies inside a larger one's."""
    return fraction >= 1 or zlib.crc32(_SAMPLE_SALT + _id_bytes(lead)) < fraction * _SPAN
