"""On-demand benchmarks (``make bench-ingest``, ``make bench-search``); not collected by pytest."""
