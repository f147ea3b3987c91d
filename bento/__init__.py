"""The prediction service (BentoML): contract, live model with hot swap, micro-batching."""
