"""Embedding networks shared by PE voting and metrics (imported lazily by their users)."""
