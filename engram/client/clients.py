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
from .http import base_url, options
from .methods import Awaited, Blocking, call, paged, streamed
from .sync_http import Http


class _MemoryMethods:
    """The methods of :class:`engram.memory.MemoryService`, over HTTP. Records are the same
    dataclasses; their ``tenant`` is ``""`` (the API key's tenant, which the API does not
    repeat)."""

    add = call(memory.add)
    get = call(memory.get)
    update = call(memory.update)
    delete = call(memory.delete)
    history = call(memory.history)
    list = call(memory.list_memories)
    search = call(memory.search)
    create_conversation = call(memory.create_conversation)
    conversation = call(memory.conversation)
    conversations = call(memory.conversations)
    append = call(memory.append)
    append_many = call(memory.append_many)
    recall = call(memory.recall)
    messages = call(memory.messages)
    delete_conversation = call(memory.delete_conversation)
    export_user = call(memory.export_user)
    erase_user = call(memory.erase_user)


class MemoryClient(_MemoryMethods, Blocking):
    __doc__ = _MemoryMethods.__doc__


class AsyncMemoryClient(_MemoryMethods, Awaited):
    """:class:`MemoryClient` for :class:`AsyncClient`: the same methods, to await."""


class _StateMethods:
    """Agent state, the methods of :class:`engram.state.StateService` (``db.state``) over
    HTTP, without ``tenant=`` (the API key's). Items are :class:`~engram.state.StateItem`."""

    put = call(state.put)
    get = call(state.get)
    delete = call(state.delete)
    items = call(state.items)
    search = call(state.search)
    namespaces = call(state.namespaces)


class StateClient(_StateMethods, Blocking):
    __doc__ = _StateMethods.__doc__


class AsyncStateClient(_StateMethods, Awaited):
    """:class:`StateClient` for :class:`AsyncClient`: the same methods, to await."""


class _ClientMethods:
    """The library API of :class:`engram.Engram`, over HTTP, for both clients."""

    collections = call(core.collections)
    collection = call(core.collection)
    delete_collection = call(core.delete_collection)
    add = call(core.add)
    ingest = call(core.ingest)
    documents = call(core.documents)
    iter_documents = paged(core.iter_documents)
    document = call(core.document)
    versions = call(core.versions)
    document_version = call(core.document_version)
    diff_versions = call(core.diff_versions)
    restore_version = call(core.restore_version)
    purge_versions = call(core.purge_versions)
    delete = call(core.delete)
    search = call(core.search)
    suggest = call(core.suggest)
    embed = call(core.embed)
    ask = call(core.ask)
    chat = call(core.chat)
    chat_stream = streamed(core.chat_stream)


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
        client = httpx.Client(**options(self.url, api_key, timeout, transport))
        super().__init__(Http(client))
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
        client = httpx.AsyncClient(**options(self.url, api_key, timeout, transport))
        super().__init__(AsyncHttp(client))
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
