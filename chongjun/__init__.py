"""The runtime: the `chongjun` command (`cli`), where PostgreSQL and Redis are (`runtime`: the
configured URLs or the embedded servers of `embedded`), and `serve`.

Beside it, not in it: `demo` (the demo data seed and its reference catalog) and `bench` (the
benchmarks), tools that only the CLI imports. The runtime core never imports them and they do
not import each other (import-linter contract `runtime-layers` in pyproject.toml).
"""
