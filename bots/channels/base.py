"""The small base class every provider adapter implements, and the registry that finds them by name."""

from __future__ import annotations

from abc import ABC, abstractmethod

from bots.messages import OutboundMessage, SendResult

REGISTRY: dict[str, type[Channel]] = {}


class SendError(Exception):
    """A send failed; ``retryable`` says whether trying again later can help."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class Channel(ABC):
    """A provider adapter. Subclasses set ``name`` and implement ``send``."""

    name: str = ""

    @abstractmethod
    def send(self, message: OutboundMessage) -> SendResult:
        """Hand ``message`` to the provider.

        Raises:
            SendError: the provider refused or could not be reached.
        """


def register(cls: type[Channel]) -> type[Channel]:
    """Class decorator: make a channel adapter findable by its ``name``."""
    REGISTRY[cls.name] = cls
    return cls
