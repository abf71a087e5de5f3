"""retool-operator: runs self-hosted Retool on Kubernetes and upgrades it safely."""

__version__ = "0.1.0"
