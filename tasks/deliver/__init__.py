"""Deliver: the SMTP client, relay pool or MX routing, shaping and dispatch."""
