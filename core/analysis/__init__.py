"""Texts in, numbers out: statistics over batches and the likely causes of their forks."""
