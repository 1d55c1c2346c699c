"""The model-server runtime: Open Inference Protocol v2 over HTTP, the metrics contract, model storage.

Installed with the `[server]` extra; the operator never imports this package. Entry points are the
`modelpilot serve` and `modelpilot fetch` subcommands (see docs/runtime.md).
"""
