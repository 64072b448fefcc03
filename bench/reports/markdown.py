"""Markdown tables of cells that are formatted already."""

from tabulate import tabulate


def markdown_table(body, header) -> str:
    """GitHub markdown of the cells as they are written: tabulate would otherwise re-parse an all-number
    column and print `+0.08` as `0.08` and `28.00` as `28`."""
    return tabulate(body, header, tablefmt="github", disable_numparse=True)
