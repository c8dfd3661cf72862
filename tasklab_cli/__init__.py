"""Command-line tools around the phases: run one, demo one, manage processes."""
