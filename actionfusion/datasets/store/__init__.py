"""The prepared sample store: one record per sample, written by ``actionfusion prepare``."""
