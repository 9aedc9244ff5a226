"""The demo: its loopback SMTP receiver and its settings."""
