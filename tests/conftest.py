"""Shared configuration of the test suite. Keep it small: helpers that tests share
(server URLs, the acceptance suite) live in ``esrc_testkit``.

Under ``CI=true`` hypothesis prints a reproduction blob with every failure, so a
failure seen only in CI can be replayed locally with ``@reproduce_failure``.
"""

from __future__ import annotations

from esrc_testkit.servers import in_ci
from hypothesis import settings

settings.register_profile("ci", print_blob=True)
if in_ci():
    settings.load_profile("ci")
