"""The gate: per-scenario results, the paired statistics, the decision, junit and the typed summary."""
