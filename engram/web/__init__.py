"""The web app that ``engram serve`` hosts at ``/``: server-rendered pages for the people who
search, chat, edit the knowledge base and run engram (engram.web.app installs it).

Pages are Jinja2 templates rendered by the process that owns the data, with htmx (vendored,
16 KB gzipped) swapping page fragments and a few small scripts of our own (streamed chat,
uploads): no build step, no CDN, every asset shipped in the wheel. A page is HTML that works
without a framework, so it is fast to serve, accessible by default and simple to change.
"""
