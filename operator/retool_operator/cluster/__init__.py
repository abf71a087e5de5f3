"""I/O: the Kubernetes API (server-side apply under one field manager, status, Events)."""
