"""The proxy: the only part of dojoguard that imports mitmproxy.

``addon`` holds the hooks; ``judge`` decides one write; ``recognition``,
``body`` and ``multipart`` read requests; ``catalogue`` is the endpoint data;
``sessions``, ``skills``, ``learning`` and ``attachments`` are what the proxy
learns; ``runner`` and ``cli`` start it.
"""
