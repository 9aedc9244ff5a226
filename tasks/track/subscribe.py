"""Subscribing with double opt-in (the pages part of issue #11 fills this in)."""


def subscribe_routes() -> list:
    return []
