"""The whole method end to end on the built-in benchmark (demo), its ablations, and their reports."""
