"""Prefect tasks and the plain functions under them, one module per concern."""
