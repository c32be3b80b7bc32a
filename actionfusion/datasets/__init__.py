"""Dataset formats, splits, the synthetic generator and the prepared sample store."""
