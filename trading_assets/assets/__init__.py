"""The per-symbol graph: ohlcv -> indicators -> charts -> llm_signal -> orders -> portfolio."""
