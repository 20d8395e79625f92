"""A Python client for an engram server: the library API, over HTTP.

::

    import engram

    with engram.Client("http://127.0.0.1:8000", api_key="egm_...") as client:
        client.add([{"id": "faq-1", "text": "Reset your password from the login page."}])
        for hit in client.search("how do I reset a password?").results:
            print(hit.title, hit.score)

It returns the library's types (:class:`~engram.types.Collection`,
:class:`~engram.types.SearchResult`, ...) and raises the library's exception classes: an
error response of the server is raised as the class its ``code`` names, with its message,
hint and details; a server that cannot be reached raises
:class:`~engram.errors.ServerUnavailable`.

:class:`AsyncClient` is the same client for asyncio, method for method::

    async with engram.AsyncClient("http://127.0.0.1:8000", api_key="egm_...") as client:
        found = await client.search("how do I reset a password?")
"""

from .async_http import AsyncEventStream
from .clients import (
    AsyncClient,
    AsyncMemoryClient,
    AsyncStateClient,
    Client,
    MemoryClient,
    StateClient,
)
from .core import RemoteSearchResponse
from .sync_http import EventStream

__all__ = [
    "AsyncClient",
    "AsyncEventStream",
    "AsyncMemoryClient",
    "AsyncStateClient",
    "Client",
    "EventStream",
    "MemoryClient",
    "RemoteSearchResponse",
    "StateClient",
]
