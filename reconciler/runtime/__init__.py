"""One pass against the world: orchestration, executor, probes, inventory file and lock, build
contexts; backends/ below them is the only code that touches Podman."""
