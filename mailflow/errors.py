"""The two error classes the command line turns into exit codes."""


class MailflowError(Exception):
    """Bad usage or unreadable input: exit 2 with this one-line message."""


class NeedsAttention(Exception):
    """The work ran but something needs a person (e.g. a campaign aborted): exit 1."""
