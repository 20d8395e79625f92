"""The methods of both clients, declared once: ``search = call(core.search)`` in a table
class that :class:`~engram.Client` (a :class:`Blocking` client) and
:class:`~engram.AsyncClient` (an :class:`Awaited` one) share.

Each descriptor holds two plain functions made from one spec (see :mod:`.flow`), with the
spec's signature and docstring: one hands what the spec returns to the blocking runner, the
other to the asyncio runner (an ``async def`` for :func:`call`). The class of the instance,
or of the class, it is read from picks one; type checkers see the same choice in the
overloads of ``__get__``.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from types import MethodType
from typing import Any, Generic, ParamSpec, Self, TypeVar, overload

from .async_http import AsyncEventStream, AsyncHttp
from .flow import Flow, Pages, Request
from .sync_http import EventStream, Http

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
S = TypeVar("S")  # what a method returns on a blocking client
A = TypeVar("A")  # and on an async one


class Blocking:
    """A client whose methods block: they run specs on an :class:`~.sync_http.Http`."""

    def __init__(self, http: Http) -> None:
        self._http = http


class Awaited:
    """A client whose methods are awaited: they run specs on an
    :class:`~.async_http.AsyncHttp`."""

    def __init__(self, http: AsyncHttp) -> None:
        self._http = http


class Method(Generic[P, S, A]):
    """A method made from ``spec`` for both kinds of client (see the module docstring): on a
    :class:`Blocking` client it returns ``S``, on an :class:`Awaited` one ``A``. The runner
    method named ``runner`` gets what the spec returns; ``awaits``: the asyncio side is an
    ``async def`` awaiting it (else it returns what the runner does, an async iterator)."""

    def __init__(self, spec: Callable[P, Any], runner: str, *, awaits: bool) -> None:
        self.spec = spec

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
            True: awaited if awaits else iterated,
        }
        for function in self.functions.values():
            function.__doc__, function.__module__ = spec.__doc__, spec.__module__
            function.__signature__ = signature  # type: ignore[attr-defined]

    def __set_name__(self, owner: type, name: str) -> None:
        for function in self.functions.values():
            function.__name__, function.__qualname__ = name, f"{owner.__qualname__}.{name}"

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Self: ...
    @overload
    def __get__(self, obj: Awaited, owner: type | None = None) -> Callable[P, A]: ...
    @overload
    def __get__(self, obj: Blocking, owner: type | None = None) -> Callable[P, S]: ...
    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        function = self.functions[issubclass(owner or type(obj), Awaited)]
        return function if obj is None else MethodType(function, obj)

    def __repr__(self) -> str:
        return f"<client method {self.spec.__module__}.{self.spec.__qualname__}>"


def call(spec: Callable[P, Flow[R]]) -> Method[P, R, Coroutine[Any, Any, R]]:
    """A method that runs a flow: its value (awaited, on an async client)."""
    return Method(spec, "run", awaits=True)


def paged(spec: Callable[P, Pages[T]]) -> Method[P, Iterator[T], AsyncIterator[T]]:
    """A method returning the items of a paged list, fetched lazily: an iterator (an async
    iterator, on an async client)."""
    return Method(spec, "iterate", awaits=False)


def streamed(spec: Callable[P, Request]) -> Method[P, EventStream, AsyncEventStream]:
    """A method returning the events of a streamed response: an :class:`EventStream` (an
    :class:`AsyncEventStream`, on an async client)."""
    return Method(spec, "stream", awaits=False)
