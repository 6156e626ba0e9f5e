"""``python -m bench``: run the benchmark harness; ``python -m bench relay`` runs the
relay benchmark (:mod:`bench.relay`)."""

from __future__ import annotations

import sys

if sys.argv[1:2] == ["relay"]:
    from bench.relay import main as relay_main

    sys.exit(relay_main(sys.argv[2:]))

from bench.run import main

sys.exit(main())
