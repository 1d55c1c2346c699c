"""modelpilot: a Kubernetes operator that deploys ML models and rolls them out as canaries."""

__version__ = "0.1.0"
