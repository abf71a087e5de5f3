"""The pure core: models, version logic, builders and the upgrade state machine.

Nothing here performs I/O or imports kopf, kubernetes or psycopg (an import-linter contract
keeps it so), so every decision the operator makes can be tested without a cluster.
"""
