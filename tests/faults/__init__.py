"""The fault suite ("never twice, never lost"): the real service under faults, then checks.

Long form: ``.venv/bin/python -m tests.faults --cycles 50`` (or ``make faults``); the short form
runs in the normal test run as ``tests/faults/test_faults_short.py``.
"""
