"""The pure engine: observed-state types, plan values, planners, drift, hashing, preflight. No IO."""
