"""`make bench-batch`: `modelpilot batch` shards against the raw predict() rate (see run.py)."""
