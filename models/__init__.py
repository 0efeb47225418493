"""models: from feature frames to log-probabilities (truncated attention, encoder, CTC head, decoding)."""
