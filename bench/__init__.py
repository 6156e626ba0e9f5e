"""The esrc benchmark harness: each backend beside the raw driver on the same database.

Run it with ``python -m bench`` (or ``nox -s bench -- ARGS``); ``python -m bench --help``
lists the options. See ``docs/benchmarks.md`` for what is measured and how to read it.
"""
