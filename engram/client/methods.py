"""The methods of both clients, declared once: ``search = Call(core.search)`` in a table
class that :class:`~engram.Client` (a :class:`Blocking` client) and
:class:`~engram.AsyncClient` (an :class:`Awaited` one) share.

Each descriptor holds two plain functions made from one spec (see :mod:`.flow`), with the
spec's signature and docstring: one hands what the spec returns to the blocking runner, the
other to the asyncio runner (an ``async def`` for :class:`Call`). The class of the instance,
or of the class, it is read from picks one; type checkers see the same choice in the
overloads of ``__get__``.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from types import MethodType
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Self, TypeVar, overload

from .async_http import AsyncEventStream, AsyncHttp
from .flow import Flow, Pages, Request
from .sync_http import EventStream, Http

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class Blocking:
    """A client whose methods block: they run specs on an :class:`~.sync_http.Http`."""

    _http: Http


class Awaited:
    """A client whose methods are awaited: they run specs on an
    :class:`~.async_http.AsyncHttp`."""

    _http: AsyncHttp


class _Method:
    """A method made from ``spec`` for both kinds of client (see the module docstring):
    the runner method named :attr:`runner` gets what the spec returns; :attr:`awaits`:
    the asyncio side awaits it (else it returns what the runner does, an async iterator)."""

    runner = "run"
    awaits = True

    def __init__(self, spec: Callable[..., Any]) -> None:
        self.spec = spec
        runner = self.runner

        def blocking(client: Blocking, /, *args: Any, **kwargs: Any) -> Any:
            return getattr(client._http, runner)(spec(*args, **kwargs))

        async def awaited(client: Awaited, /, *args: Any, **kwargs: Any) -> Any:
            return await getattr(client._http, runner)(spec(*args, **kwargs))

        def iterated(client: Awaited, /, *args: Any, **kwargs: Any) -> Any:
            return getattr(client._http, runner)(spec(*args, **kwargs))

        signature = inspect.signature(spec)  # after self; the return is the spec's, not ours
        this = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
        signature = signature.replace(
            parameters=[this, *signature.parameters.values()],
            return_annotation=inspect.Signature.empty,
        )
        self.functions: dict[bool, Callable[..., Any]] = {
            False: blocking,
            True: awaited if self.awaits else iterated,
        }
        for function in self.functions.values():
            function.__doc__, function.__module__ = spec.__doc__, spec.__module__
            function.__signature__ = signature  # type: ignore[attr-defined]

    def __set_name__(self, owner: type, name: str) -> None:
        for function in self.functions.values():
            function.__name__, function.__qualname__ = name, f"{owner.__qualname__}.{name}"

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        function = self.functions[issubclass(owner or type(obj), Awaited)]
        return function if obj is None else MethodType(function, obj)

    def __repr__(self) -> str:
        return f"<client method {self.spec.__module__}.{self.spec.__qualname__}>"


class Call(_Method, Generic[P, R]):
    """A method that runs a flow: its value (awaited, on an async client)."""

    def __init__(self, spec: Callable[P, Flow[R]]) -> None:
        super().__init__(spec)

    if TYPE_CHECKING:

        @overload
        def __get__(self, obj: None, owner: type | None = None) -> Self: ...
        @overload
        def __get__(
            self, obj: Awaited, owner: type | None = None
        ) -> Callable[P, Coroutine[Any, Any, R]]: ...
        @overload
        def __get__(self, obj: Blocking, owner: type | None = None) -> Callable[P, R]: ...
        def __get__(self, obj: object | None, owner: type | None = None) -> Any: ...


class Paged(_Method, Generic[P, T]):
    """A method returning the items of a paged list, fetched lazily: an iterator (an async
    iterator, on an async client)."""

    runner, awaits = "iterate", False

    def __init__(self, spec: Callable[P, Pages[T]]) -> None:
        super().__init__(spec)

    if TYPE_CHECKING:

        @overload
        def __get__(self, obj: None, owner: type | None = None) -> Self: ...
        @overload
        def __get__(
            self, obj: Awaited, owner: type | None = None
        ) -> Callable[P, AsyncIterator[T]]: ...
        @overload
        def __get__(self, obj: Blocking, owner: type | None = None) -> Callable[P, Iterator[T]]: ...
        def __get__(self, obj: object | None, owner: type | None = None) -> Any: ...


class Streamed(_Method, Generic[P]):
    """A method returning the events of a streamed response: an :class:`EventStream` (an
    :class:`AsyncEventStream`, on an async client)."""

    runner, awaits = "stream", False

    def __init__(self, spec: Callable[P, Request]) -> None:
        super().__init__(spec)

    if TYPE_CHECKING:

        @overload
        def __get__(self, obj: None, owner: type | None = None) -> Self: ...
        @overload
        def __get__(
            self, obj: Awaited, owner: type | None = None
        ) -> Callable[P, AsyncEventStream]: ...
        @overload
        def __get__(self, obj: Blocking, owner: type | None = None) -> Callable[P, EventStream]: ...
        def __get__(self, obj: object | None, owner: type | None = None) -> Any: ...
