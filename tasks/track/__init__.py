"""The tracking and unsubscribe service: its app, event log, and what the aggregate applies from its events."""
