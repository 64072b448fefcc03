"""The applications: the command line, the staged reproduction behind it, the demo server and the perf benchmark."""
