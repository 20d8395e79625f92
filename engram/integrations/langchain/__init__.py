"""LangChain on engram: a vector store, a retriever and engram's embeddings, over the
library (``engram.open``) or a server (``engram.Client``).

- :class:`EngramVectorStore`: ``add_texts`` / ``add_documents`` (ids are engram document
  keys; an existing id gets a new version), ``get_by_ids``, ``delete``,
  ``similarity_search`` (``filter``, ``mode``, ``rerank``), ``..._with_score`` (engram's
  scores), ``..._with_relevance_scores`` (in [0, 1]), ``..._by_vector`` and MMR,
  ``from_texts``, ``as_retriever``.
- :class:`EngramRetriever`: a ``BaseRetriever`` whose Documents carry engram's
  attribution in ``metadata["engram"]``.
- :class:`EngramEmbeddings`: engram's embedding model as LangChain ``Embeddings``; engram
  always embeds with its collection's model, so a store takes no other ``embedding``.
- :func:`to_engram_filter`: LangChain-style metadata filters in engram's filter syntax.

Install with ``pip install 'engram[langchain]'``.
"""

from __future__ import annotations

try:
    import langchain_core  # noqa: F401
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise ImportError(
        "engram.integrations.langchain needs LangChain: pip install 'engram[langchain]'"
    ) from exc

from .embeddings import EngramEmbeddings
from .filters import to_engram_filter
from .retriever import EngramRetriever
from .vectorstore import EngramVectorStore

__all__ = ["EngramEmbeddings", "EngramRetriever", "EngramVectorStore", "to_engram_filter"]
