"""Adapters that let other frameworks use engram, one module per framework
(:mod:`engram.integrations.langgraph`). Each is imported only by its users: ``import engram``
imports none of them, nor the framework they adapt to."""
