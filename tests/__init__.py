"""The project's tests; shared helpers live in `tests.support`."""
