""":class:`Client` and :class:`AsyncClient`: the library API of :class:`engram.Engram` over the
HTTP API, blocking and with ``await``.

The two are tables of the same specs (:mod:`.core`, :mod:`.memory`, :mod:`.state`; see
:mod:`.flow`), bound to a blocking runner (:mod:`.sync_http`) or an asyncio one
(:mod:`.async_http`): a method's signature, docstring, request and conversion are written
once, and each client has every method of the other.
"""

from __future__ import annotations

import httpx

from . import async_http as aio
from . import core, memory, state
from . import sync_http as sync
from .async_http import AsyncHttp
from .http import base_url
from .sync_http import Http


class MemoryClient:
    """The methods of :class:`engram.memory.MemoryService`, over HTTP. Records are the same
    dataclasses; their ``tenant`` is ``""`` (the API key's tenant, which the API does not
    repeat)."""

    def __init__(self, http: Http) -> None:
        self._http = http

    add = sync.method(memory.add)
    get = sync.method(memory.get)
    update = sync.method(memory.update)
    delete = sync.method(memory.delete)
    history = sync.method(memory.history)
    list = sync.method(memory.list_memories)
    search = sync.method(memory.search)
    create_conversation = sync.method(memory.create_conversation)
    conversation = sync.method(memory.conversation)
    conversations = sync.method(memory.conversations)
    append = sync.method(memory.append)
    append_many = sync.method(memory.append_many)
    recall = sync.method(memory.recall)
    messages = sync.method(memory.messages)
    delete_conversation = sync.method(memory.delete_conversation)
    export_user = sync.method(memory.export_user)
    erase_user = sync.method(memory.erase_user)


class AsyncMemoryClient:
    """:class:`MemoryClient` for :class:`AsyncClient`: the same methods, to await."""

    def __init__(self, http: AsyncHttp) -> None:
        self._http = http

    add = aio.method(memory.add)
    get = aio.method(memory.get)
    update = aio.method(memory.update)
    delete = aio.method(memory.delete)
    history = aio.method(memory.history)
    list = aio.method(memory.list_memories)
    search = aio.method(memory.search)
    create_conversation = aio.method(memory.create_conversation)
    conversation = aio.method(memory.conversation)
    conversations = aio.method(memory.conversations)
    append = aio.method(memory.append)
    append_many = aio.method(memory.append_many)
    recall = aio.method(memory.recall)
    messages = aio.method(memory.messages)
    delete_conversation = aio.method(memory.delete_conversation)
    export_user = aio.method(memory.export_user)
    erase_user = aio.method(memory.erase_user)


class StateClient:
    """Agent state, the methods of :class:`engram.state.StateService` (``db.state``) over
    HTTP, without ``tenant=`` (the API key's). Items are :class:`~engram.state.StateItem`."""

    def __init__(self, http: Http) -> None:
        self._http = http

    put = sync.method(state.put)
    get = sync.method(state.get)
    delete = sync.method(state.delete)
    items = sync.method(state.items)
    search = sync.method(state.search)
    namespaces = sync.method(state.namespaces)


class AsyncStateClient:
    """:class:`StateClient` for :class:`AsyncClient`: the same methods, to await."""

    def __init__(self, http: AsyncHttp) -> None:
        self._http = http

    put = aio.method(state.put)
    get = aio.method(state.get)
    delete = aio.method(state.delete)
    items = aio.method(state.items)
    search = aio.method(state.search)
    namespaces = aio.method(state.namespaces)


class Client:
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

    collections = sync.method(core.collections)
    collection = sync.method(core.collection)
    delete_collection = sync.method(core.delete_collection)
    add = sync.method(core.add)
    ingest = sync.method(core.ingest)
    documents = sync.method(core.documents)
    iter_documents = sync.iterator(core.iter_documents)
    document = sync.method(core.document)
    versions = sync.method(core.versions)
    delete = sync.method(core.delete)
    search = sync.method(core.search)
    chat = sync.method(core.chat)
    chat_stream = sync.stream(core.chat_stream)

    def close(self) -> None:
        """Close the client's connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"


class AsyncClient:
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

    collections = aio.method(core.collections)
    collection = aio.method(core.collection)
    delete_collection = aio.method(core.delete_collection)
    add = aio.method(core.add)
    ingest = aio.method(core.ingest)
    documents = aio.method(core.documents)
    iter_documents = aio.iterator(core.iter_documents)
    document = aio.method(core.document)
    versions = aio.method(core.versions)
    delete = aio.method(core.delete)
    search = aio.method(core.search)
    chat = aio.method(core.chat)
    chat_stream = aio.stream(core.chat_stream)

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncClient({self.url!r})"
