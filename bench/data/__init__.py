"""Datasets: the registry of standard sets, download and verification, DIV2K sub-images, image I/O, loading and the input cache."""
