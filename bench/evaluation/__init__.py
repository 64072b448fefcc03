"""Evaluation of table entries at every level, and the tidy results store."""
