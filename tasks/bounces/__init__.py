"""Bounces: classify an SMTP reply or a bounce message."""
