"""Benchmarks as data: named providers of (sample, label, split) and class names.

NTU RGB+D's benchmarks split by sample name; a store's own benchmark files (written by ``prepare``
of your own videos, PKU-MMD and NW-UCLA), a pyskl import's named splits and a user's CSV/JSON list
name their samples (:mod:`.resolve` finds one by name, :mod:`.benchmark_file` reads and writes the files).
"""

from .benchmark_file import BenchmarkFileError, read_benchmark_csv, read_benchmark_file, write_benchmark_file
from .benchmark_lists import SPLITS, BenchmarkLists, stratified_split
from .resolve import available_benchmarks, is_benchmark_name, resolve_benchmark

__all__ = ["BenchmarkFileError", "BenchmarkLists", "SPLITS", "available_benchmarks", "is_benchmark_name",
           "read_benchmark_csv", "read_benchmark_file", "resolve_benchmark", "stratified_split",
           "write_benchmark_file"]
