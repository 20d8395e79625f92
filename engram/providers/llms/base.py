"""The chat-model interface: one message list in, text (or a stream of text deltas) out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self, get_args

from engram.errors import InvalidInput

Role = Literal["system", "user", "assistant"]
ROLES: tuple[str, ...] = get_args(Role)


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One turn of a conversation, in the role/content shape every chat API shares."""

    role: Role
    content: str

    def __post_init__(self) -> None:
        # Messages are built from request bodies; a bad role must fail here with a clear
        # error rather than upstream as an opaque 400 from the model server.
        if self.role not in ROLES:
            raise InvalidInput(
                f"unknown chat role {self.role!r}", hint=f"use one of: {', '.join(ROLES)}"
            )
        if not isinstance(self.content, str):
            raise InvalidInput(f"chat message content must be text, got {type(self.content)}")

    def to_dict(self) -> dict[str, str]:
        """The wire shape ``{"role": ..., "content": ...}``."""
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True, slots=True)
class Reply:
    """A finished completion and the id of the model that actually produced it."""

    text: str
    model_id: str


class TokenStream(Iterator[str]):
    """An iterator of text deltas that knows which model produces them.

    ``close()`` releases the underlying HTTP response; a consumer that stops early (a client
    that disconnects) must call it, or use the stream as a context manager.
    """

    def __init__(self, tokens: Iterable[str], model_id: str, *, head: Sequence[str] = ()) -> None:
        self.model_id = model_id
        self._tokens = iter(tokens)
        self._head = list(head)  # deltas already pulled (a fallback peeks at the first one)

    def __iter__(self) -> TokenStream:
        return self

    def __next__(self) -> str:
        if self._head:
            return self._head.pop(0)
        return next(self._tokens)

    def close(self) -> None:
        """Stop the stream and release its connection."""
        self._head.clear()
        close = getattr(self._tokens, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class LLM(ABC):
    """A chat model.

    Subclasses set ``model_id`` (``"provider:model"``, reported with every answer) and
    implement :meth:`complete` and :meth:`stream`. ``None`` for ``max_tokens``,
    ``temperature`` or ``timeout`` means the provider's default. Failures raise
    :class:`~engram.providers.llms.errors.LLMError` (or its subclass ``LLMUnavailable``).
    """

    model_id: str

    @abstractmethod
    def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        timeout: float | None = None,
    ) -> str:
        """The model's whole reply to ``messages``."""

    @abstractmethod
    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        timeout: float | None = None,
    ) -> Iterator[str]:
        """The model's reply as text deltas, in order. ``timeout`` bounds each wait for data,
        so a stalled server raises instead of hanging."""

    def reply(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        timeout: float | None = None,
    ) -> Reply:
        """:meth:`complete`, plus the id of the model that answered (a fallback chain
        overrides this to report the link that succeeded)."""
        text = self.complete(
            messages, max_tokens=max_tokens, temperature=temperature, timeout=timeout
        )
        return Reply(text, self.model_id)

    def reply_stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        timeout: float | None = None,
    ) -> TokenStream:
        """:meth:`stream` wrapped in a :class:`TokenStream` carrying the answering model id."""
        tokens = self.stream(
            messages, max_tokens=max_tokens, temperature=temperature, timeout=timeout
        )
        return TokenStream(tokens, self.model_id)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections the model owns."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        # Never include credentials: reprs end up in logs and tracebacks.
        return f"<{type(self).__name__} {self.model_id}>"
