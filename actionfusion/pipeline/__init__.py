"""Configs, prepare, train, evaluate, feature extraction and the command line."""
