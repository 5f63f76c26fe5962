"""Texts in, numbers out: comparison, divergence trees, forks, drift, statistics, answers and fork causes."""
