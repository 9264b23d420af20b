"""One pass against the world: orchestration, executor, inventory file and lock, build contexts, backends."""
