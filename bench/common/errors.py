"""User-facing errors: one message that names the problem and the fix.

The CLI prints these without a traceback and exits non-zero; anything else is a bug.
"""

import difflib


class HyperbenchError(Exception):
    """A problem with the user's input, configuration or data (not a bug in hyperbench)."""

    def __init__(self, problem: str, fix: str = ""):
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}" + (f"\n  fix: {fix}" if fix else ""))


def did_you_mean(name: str, choices) -> str:
    """A "did you mean" hint listing the closest known names (or all of them when nothing is close)."""
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    return "known: " + ", ".join(choices)
