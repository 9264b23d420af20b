"""The only code that touches Podman or runs processes: the API adapter and `podman machine`."""
