"""The error classes the command line turns into exit codes."""


class MailflowError(Exception):
    """Bad usage or unreadable input: exit 2 with this one-line message."""


class NeedsAttention(Exception):
    """The work ran but something needs a person (e.g. a campaign aborted): exit 1."""


class Interrupted(Exception):
    """A stop was requested (Ctrl-C, SIGTERM) and the send wound down: exit 130, resume by running it again."""
