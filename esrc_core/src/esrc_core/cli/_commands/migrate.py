"""``esrc migrate``: create or upgrade a store's tables ahead of time."""

from __future__ import annotations

import argparse

from esrc_core.capabilities import Capability, offered
from esrc_core.cli._arguments import store_arguments
from esrc_core.cli._command import Command
from esrc_core.cli._stores import open_store
from esrc_core.errors import NotSupportedError
from esrc_core.migrations import Migratable
from esrc_core.urls import mask_url

__all__ = ["COMMANDS"]


def _migrate(args: argparse.Namespace) -> int:
    store = open_store(args.url, dict(args.option))
    try:
        migratable = offered(store, Capability.MIGRATE, Migratable)
        if migratable is None:
            raise NotSupportedError(f"the store for {mask_url(args.url)} has no schema to migrate")
        migratable.migrate()
    finally:
        store.close()
    print(f"esrc migrate: {mask_url(args.url)} is up to date")
    return 0


COMMANDS = (
    Command(
        "migrate", "create or upgrade a store's tables (idempotent)", store_arguments, _migrate
    ),
)
"""``esrc migrate``."""
