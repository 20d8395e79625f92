"""Embedders: the :class:`~engram.providers.embedders.base.Embedder` interface and its backends
(one per module, imported only when used)."""
