"""`make bench-server`: the model-server runtime against MLServer (see run.py)."""
