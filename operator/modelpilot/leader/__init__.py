"""Leader election over a coordination.k8s.io Lease: only the replica holding it runs the operator."""
