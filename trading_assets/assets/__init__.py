"""The per-symbol asset graph: ohlcv -> indicators -> charts -> llm_signal -> orders -> portfolio."""
