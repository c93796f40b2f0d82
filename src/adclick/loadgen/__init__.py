"""Synthetic click traffic for tests and benchmarks, with the exact counts it implies.

``generator`` makes the messages (pure, seeded), ``truth`` counts the valid unique clicks
and writes / reads the truth file, ``send`` produces the messages to Kafka.
"""

from adclick.loadgen.generator import Block, LoadSpec, generate
from adclick.loadgen.send import SendReport, send_blocks
from adclick.loadgen.truth import Truth, TruthAccumulator, read_truth

__all__ = [
    "Block",
    "LoadSpec",
    "SendReport",
    "Truth",
    "TruthAccumulator",
    "generate",
    "read_truth",
    "send_blocks",
]
