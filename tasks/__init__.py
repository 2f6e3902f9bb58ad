"""The five xlingbench tasks, each a metadata record plus a pure computation over arrays."""
