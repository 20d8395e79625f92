""":class:`Client` and :class:`AsyncClient`: the library API of :class:`engram.Engram` over the
HTTP API, blocking and with ``await``.

Both take their methods from one table of specs (:mod:`.core`, :mod:`.memory`,
:mod:`.state`; see :mod:`.flow` and :mod:`.methods`), run by a blocking runner
(:mod:`.sync_http`) or an asyncio one (:mod:`.async_http`): a method's signature,
docstring, request and conversion are written once, and each client has every method of
the other.
"""

from __future__ import annotations

import httpx

from . import core, memory, state
from .async_http import AsyncHttp
from .http import base_url
from .methods import Awaited, Blocking, Call, Paged, Streamed
from .sync_http import Http


class _MemoryMethods:
    """The methods of :class:`engram.memory.MemoryService`, over HTTP. Records are the same
    dataclasses; their ``tenant`` is ``""`` (the API key's tenant, which the API does not
    repeat)."""

    add = Call(memory.add)
    get = Call(memory.get)
    update = Call(memory.update)
    delete = Call(memory.delete)
    history = Call(memory.history)
    list = Call(memory.list_memories)
    search = Call(memory.search)
    create_conversation = Call(memory.create_conversation)
    conversation = Call(memory.conversation)
    conversations = Call(memory.conversations)
    append = Call(memory.append)
    append_many = Call(memory.append_many)
    recall = Call(memory.recall)
    messages = Call(memory.messages)
    delete_conversation = Call(memory.delete_conversation)
    export_user = Call(memory.export_user)
    erase_user = Call(memory.erase_user)


class MemoryClient(_MemoryMethods, Blocking):
    __doc__ = _MemoryMethods.__doc__

    def __init__(self, http: Http) -> None:
        self._http = http


class AsyncMemoryClient(_MemoryMethods, Awaited):
    """:class:`MemoryClient` for :class:`AsyncClient`: the same methods, to await."""

    def __init__(self, http: AsyncHttp) -> None:
        self._http = http


class _StateMethods:
    """Agent state, the methods of :class:`engram.state.StateService` (``db.state``) over
    HTTP, without ``tenant=`` (the API key's). Items are :class:`~engram.state.StateItem`."""

    put = Call(state.put)
    get = Call(state.get)
    delete = Call(state.delete)
    items = Call(state.items)
    search = Call(state.search)
    namespaces = Call(state.namespaces)


class StateClient(_StateMethods, Blocking):
    __doc__ = _StateMethods.__doc__

    def __init__(self, http: Http) -> None:
        self._http = http


class AsyncStateClient(_StateMethods, Awaited):
    """:class:`StateClient` for :class:`AsyncClient`: the same methods, to await."""

    def __init__(self, http: AsyncHttp) -> None:
        self._http = http


class _ClientMethods:
    """The library API of :class:`engram.Engram`, over HTTP, for both clients."""

    collections = Call(core.collections)
    collection = Call(core.collection)
    delete_collection = Call(core.delete_collection)
    add = Call(core.add)
    ingest = Call(core.ingest)
    documents = Call(core.documents)
    iter_documents = Paged(core.iter_documents)
    document = Call(core.document)
    versions = Call(core.versions)
    delete = Call(core.delete)
    search = Call(core.search)
    chat = Call(core.chat)
    chat_stream = Streamed(core.chat_stream)


class Client(_ClientMethods, Blocking):
    """An engram server, used like the library: ``Client(url, api_key)`` has the methods of
    :class:`engram.Engram` and returns the same types, raising the same exception classes.

    ``transport`` is an ``httpx`` transport (tests, proxies, retries); a server that cannot be
    reached raises :class:`~engram.errors.ServerUnavailable`. The tenant is the API key's.
    Use it as a context manager, or call :meth:`close`. :class:`AsyncClient` is the same
    with ``await``.
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        timeout: float | None = 30,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = base_url(url)
        self._http = Http(self.url, api_key, timeout=timeout, transport=transport)
        self.memory = MemoryClient(self._http)
        """Conversations and long-term memories (the methods of ``Engram.memory``)."""
        self.state = StateClient(self._http)
        """Agent state (the methods of ``Engram.state``)."""

    def close(self) -> None:
        """Close the client's connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"


class AsyncClient(_ClientMethods, Awaited):
    """:class:`Client` for asyncio: the same methods, parameters, return types and
    exceptions, to ``await``. ``iter_documents`` is an async iterator; ``chat_stream`` an
    :class:`~engram.client.AsyncEventStream` (``async for event, data in ...``).

    ``transport`` is an ``httpx`` async transport. Use it as an async context manager
    (``async with engram.AsyncClient(url, api_key) as client:``), or call :meth:`aclose`.
    Many requests may be in flight at once (``asyncio.gather``) over its connection pool.
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        timeout: float | None = 30,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = base_url(url)
        self._http = AsyncHttp(self.url, api_key, timeout=timeout, transport=transport)
        self.memory = AsyncMemoryClient(self._http)
        """Conversations and long-term memories (the methods of ``Engram.memory``)."""
        self.state = AsyncStateClient(self._http)
        """Agent state (the methods of ``Engram.state``)."""

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncClient({self.url!r})"
