"""engram as a Model Context Protocol server, on the official ``mcp`` SDK (the ``mcp`` extra):
``engram mcp`` over stdio (:mod:`engram.mcp.stdio`) and ``/mcp`` on ``engram serve``
(:mod:`engram.mcp.http`). ``import engram`` does not import this package nor the SDK."""
