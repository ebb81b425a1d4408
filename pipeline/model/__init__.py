"""Pure logic, no I/O: release.yml (config/), tag rules (tags/), the plan, platforms, labels, prune."""
