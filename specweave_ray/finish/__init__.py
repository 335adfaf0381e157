"""Closing an increment from its records, never re-scoring: ``validate`` (each check with its
evidence), ``done`` (the completion summary), ``sync-docs`` (architecture doc, ADR, runbook) and
the notebooks."""
