"""Runners: one module per framework family, plus the metadata registry (:mod:`.registry`).

Only :mod:`.registry` may be imported by the parent process; session modules import frameworks.
"""
