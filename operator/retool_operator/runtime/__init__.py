"""The runtime: what runs between kopf's watches and the pure core, one concern per module.

- `queue`: one reconcile at a time per RetoolDeployment, triggers coalesced, wake-ups when due.
- `observe`: what a reconcile reads beyond the watches (Secrets, the database probe), cached
  under the core's freshness rules, and the parsed spec and status.
- `apply`: every write to the API server (status, children, Events), de-duplicated and counted.
- `reconcile`: one reconcile: observe -> decide -> status -> Events and metrics -> children.
- `ports`: the calls the runtime makes on Kubernetes and the database, as protocols.
- `offload`: the thread pool the blocking calls run on, off the event loop.
"""
