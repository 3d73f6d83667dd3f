"""HR image sources, the node's pool, task rows, the stream and its consumer; ``stream`` is the only Ray module."""
