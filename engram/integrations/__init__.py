"""Adapters that let other frameworks use engram, one module (or package) per framework:
:mod:`engram.integrations.langgraph`, :mod:`engram.integrations.langchain`. Each is imported
only by its users: ``import engram`` imports none of them, nor the framework they adapt to."""
