"""Text -> desired state: strict YAML with positions, JSON Schema, security policy, the model, units."""
