"""The activator: while a model's Deployment is at zero replicas its HTTPRoute sends requests here;
each is held until the model's Service answers, then forwarded (docs/activator.md).

Pure pieces (`target`, `backoff`, `activations`, `headers`, `settings`, `command`) need only the
standard library and prometheus_client; `proxy` and `server` need aiohttp (the `[server]` extra).
"""
