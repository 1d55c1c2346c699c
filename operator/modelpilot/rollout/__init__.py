"""The canary rollout: a pure state machine and its (de)serialisation to status.canary."""
