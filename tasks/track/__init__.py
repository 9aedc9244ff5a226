"""The tracking and unsubscribe service: the links in sent mail answered over HTTP."""
