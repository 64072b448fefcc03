"""Tables 1-4 and Figs 2-5 beside the published numbers: markdown, LaTeX, CSV, PNG and PDF."""
