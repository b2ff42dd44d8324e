"""Suites, the resumable runner and the SQLite result store."""
