"""The autonomous system: orchestrator and phases, model registry and hot-swap, status, config."""
