"""Statistics for cxloop's numbers: pure functions, no Django (see ``docs/analytics-statistics.md``)."""
