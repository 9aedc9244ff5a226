"""The unsubscribe, view and preference pages (the pages part of issue #11 fills this in)."""


def page_routes() -> list:
    return []
