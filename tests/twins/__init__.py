"""tests/twins."""
