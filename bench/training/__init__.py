"""Profiles and runs, the training loop and protocols, data-parallel placement, and grid execution on a cluster."""
