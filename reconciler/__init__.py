"""podform: a declarative reconciler for Podman GPU stacks.

Pipeline (each step is a module): manifests -> schema -> model -> observed -> planner -> executor,
composed by app and driven by cli / watch.
"""

__version__ = "0.1.0"
