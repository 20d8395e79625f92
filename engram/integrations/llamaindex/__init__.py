"""LlamaIndex on engram: :class:`EngramVectorStore`, a ``BasePydanticVectorStore`` over an
engram collection (through ``engram.open`` or ``engram.Client``), and
:class:`EngramEmbedding`, engram's embedding model as a LlamaIndex embed model.

- ``add(nodes)``: one engram document per node, keyed by the node id. Its text is the node's
  text as LlamaIndex embeds it (``MetadataMode.EMBED``); its metadata, the node's metadata
  plus the node itself as JSON (``_node_content``, relationships included) and
  ``ref_doc_id``, as LlamaIndex's own stores keep them, so retrieved nodes come back whole.
- Embeddings: engram embeds the text it stores (chunked as the collection chunks) and each
  query with the collection's model. The vectors LlamaIndex computed are not used (ones of
  another dimension than engram's are refused, as a sign of another model); retrievers do not
  embed queries (``is_embedding_query`` is False): the store searches by ``query_str``.
  ``EngramEmbedding`` gives an index engram's model, so its vectors are engram's too.
- ``query``: ``DEFAULT`` → the store's ``default_mode`` (engram's hybrid unless set),
  ``HYBRID`` → hybrid, ``SEMANTIC_HYBRID`` → hybrid reranked by engram's cross-encoder,
  ``TEXT_SEARCH`` and ``SPARSE`` → keyword (BM25); other modes are refused; ``alpha`` is
  the vector leg's weight of that hybrid query (engram's, the same scale). A node longer than one of engram's chunks
  has several: it is scored by its best. A document engram ingested itself
  (``engram ingest``) comes back as one node per chunk, ``"<key>#<chunk id>"``.
- Filters: :mod:`engram.integrations.llamaindex.filters`; ``node_ids`` and ``doc_ids``
  restrict a query, ``get_nodes`` and ``delete_nodes`` as well.
- ``delete(ref_doc_id)``, ``delete_nodes``, ``clear``, ``get_nodes``; each has its async
  twin, which runs it in a worker thread.

Install with ``pip install 'engram[llamaindex]'``.
"""

from __future__ import annotations

try:
    import llama_index.core  # noqa: F401
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise ImportError(
        "engram.integrations.llamaindex needs LlamaIndex: pip install 'engram[llamaindex]'"
    ) from exc

from .embedding import EngramEmbedding
from .store import EngramVectorStore

__all__ = ["EngramEmbedding", "EngramVectorStore"]
