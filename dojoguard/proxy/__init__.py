"""The proxy: the only part of dojoguard that imports mitmproxy.

``addon`` holds the hooks; ``judge`` decides one write; ``recognition``,
``body`` and ``multipart`` read requests; ``catalogue`` is the endpoint data;
``enforcement``, ``refusal_notices`` and ``outcomes`` are what the app is told;
``sessions``, ``skills``, ``learning`` and ``attachments`` are what the proxy
learns; ``heap`` keeps its memory flat; ``runner`` and ``cli`` start it.
"""
