"""Shared test builders and fakes: tests import from here, never from one another."""
