"""Benchmarks for watchcentre: `python -m benchmarks {all,classify,drain,latency,memory,smoke}`.

Each run uses its own AMQP prefix (`bench-<hex>`) and its own database, and removes both afterwards.
See docs/performance.md for the figures and how to reproduce them.
"""
