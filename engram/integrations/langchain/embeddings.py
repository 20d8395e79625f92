"""``EngramEmbeddings``: LangChain ``Embeddings`` computed by engram's own model."""

from __future__ import annotations

from langchain_core.embeddings import Embeddings

from ...client import Client
from ...engine import Engram
from .target import Target


class EngramEmbeddings(Embeddings):
    """The embedding model of an engram library database or server, as LangChain
    ``Embeddings``: ``embed_documents`` embeds as engram embeds passages, ``embed_query`` as
    it embeds search queries (with the model's query instruction, if it has one), so the
    vectors are those engram searches with (``ENGRAM_EMBEDDING_MODEL``; a server's through
    ``POST /v1/embeddings``). A chunk engram indexes is embedded under its document's title
    and headings, when it has them: texts added without a title are embedded as they are."""

    def __init__(self, db: Engram | Client) -> None:
        self._target = Target(db, "default", None)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._target.embed(texts, kind="passage")

    def embed_query(self, text: str) -> list[float]:
        return self._target.embed([text], kind="query")[0]
