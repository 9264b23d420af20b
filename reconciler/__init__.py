"""podform: a declarative reconciler for Podman GPU stacks.

The folders are the pipeline: manifests/ (text -> desired state) -> engine/ (pure planning:
observed state + desired state -> Plan) -> runtime/ (one pass: observe, plan, execute, record;
backends/ talks to Podman) -> cli/ (commands and the only layer that prints).
docs/ARCHITECTURE.md has the diagram.
"""

__version__ = "0.1.0"
