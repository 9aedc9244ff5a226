"""A secret setting (token secret, DKIM key, relay password): shown redacted, never serialised with its value."""

from __future__ import annotations

import hmac
from collections.abc import Callable


class Secret:
    """A secret value that `repr`, `str`, f-strings and pickling never reveal; `reveal()` does.

    Settings travel into Prefect tasks, and Prefect may pickle task parameters (process pools,
    result and parameter storage) or print them. So a pickled Secret carries only its `source`,
    a picklable function that reads it where it came from (the environment or the config file);
    the process that unpickles it — a ProcessPoolTaskRunner worker, which inherits the
    environment — reads it there again, when first revealed.
    """

    __slots__ = ("_value", "_source")

    def __init__(self, value: str | None = "", source: Callable[[], str] | None = None):
        self._value = value  # None: not read yet (an unpickled secret)
        self._source = source

    def reveal(self) -> str:
        if self._value is None:
            self._value = self._source() if self._source else ""
        return self._value

    def __bool__(self) -> bool:
        return bool(self.reveal())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self.reveal().encode(), other.reveal().encode())

    def __hash__(self) -> int:
        return hash(self.reveal())

    def __repr__(self) -> str:
        return "Secret('***')" if self else "Secret('')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return format(repr(self), spec)

    def __reduce__(self):
        return (Secret, (None, self._source))

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict) -> Secret:
        return self
