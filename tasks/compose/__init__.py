"""Compose: render, tracking, tokens, headers, MIME and DKIM of one message."""
