"""The labels podform marks its Podman objects with: the one place their names are written.

Ownership is by label (never by name alone): a container, image or volume is podform's when
it carries `io.podform.stack`; the spec-hash label is how change is detected. The manifests
may not set anything under the prefix (manifests.policy refuses it). Imports nothing.
"""

LABEL_PREFIX = "io.podform."
LABEL_STACK = LABEL_PREFIX + "stack"
LABEL_KIND = LABEL_PREFIX + "kind"
LABEL_NAME = LABEL_PREFIX + "name"
LABEL_REPLICA = LABEL_PREFIX + "replica"
LABEL_SPEC_HASH = LABEL_PREFIX + "spec-hash"
LABEL_CONTENT_HASH = LABEL_PREFIX + "content-hash"
