"""Rerankers: the :class:`~engram.providers.rerankers.base.Reranker` interface and its backends
(one per module, imported only when used)."""
