"""The demo: a local web page with a restoration-level slider (`hyperbench demo`)."""
