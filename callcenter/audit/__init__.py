"""Tamper-evident audit log: every access to a recording (and other sensitive objects) is recorded."""
