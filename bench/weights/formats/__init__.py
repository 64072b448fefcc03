"""One module per entry with official weights: its OfficialFormat (see bench/weights/official.py)."""
