"""Benchmark of mr-engine: LMTP delivery, meeting requests, conflict checks, memory.

Run ``python -m bench`` (or ``make bench``); ``--help`` lists the options.
"""
