"""Transcriptions of the reference implementations, kept apart from agcn as test oracles (benchmarks use them too)."""
