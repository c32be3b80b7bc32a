"""The synthetic NTU-format dataset: the embedded default."""
