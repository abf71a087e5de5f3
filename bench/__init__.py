"""Benchmarks of the operator against a real control plane (issue 6): `python -m bench.run`.

The operator runs as its own process and is measured from outside: latencies from the bench's
watches, CPU and memory from /proc (psutil), writes from the API server's and the operator's
Prometheus metrics. Every figure is set beside a peer (Kubernetes' own controllers doing the same
job without the operator) and the issue's targets; nothing here asserts.
"""
