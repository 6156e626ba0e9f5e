"""``esrc migrate``: create or upgrade a store's tables ahead of time, check whether a
migration is due (``--check``), or print the statements that create them (``--sql``)."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from esrc_core.capabilities import Capability, offered
from esrc_core.cli._arguments import (
    STORE_ENVIRONMENT,
    output_arguments,
    store_arguments,
    store_url,
)
from esrc_core.cli._command import Command, UsageError
from esrc_core.cli._json import write_document
from esrc_core.cli._status import EXIT_MIGRATION_DUE
from esrc_core.cli._stores import open_store
from esrc_core.errors import NotSupportedError
from esrc_core.migrations import Migratable, MigrationOutcome, MigrationResult, SchemaState
from esrc_core.store import EventStore
from esrc_core.urls import mask_url

__all__ = ["COMMANDS", "migrate"]


def _migratable(store: EventStore, url: str) -> Migratable:
    found = offered(store, Capability.MIGRATE, Migratable)
    if found is None:
        raise NotSupportedError(f"the store for {mask_url(url)} has no schema to migrate")
    return found


def _said(result: MigrationResult, where: str) -> str:
    if result.outcome is MigrationOutcome.CREATED:
        return f"created the schema of {where} at version {result.after}"
    if result.outcome is MigrationOutcome.UPGRADED:
        return f"upgraded the schema of {where} from version {result.before} to {result.after}"
    return f"the schema of {where} is current (version {result.after}); nothing to do"


def _state_said(state: SchemaState, where: str) -> str:
    if state.version is None:
        return f"{where} has no schema: a migration to version {state.target} is due"
    if state.due:
        return (
            f"{where} is at schema version {state.version}: a migration to version "
            f"{state.target} is due"
        )
    return f"the schema of {where} is current (version {state.version})"


def migrate(
    url: str,
    options: dict[str, object] | None = None,
    *,
    check: bool = False,
    sql: bool = False,
    as_json: bool = False,
    quiet: bool = False,
    out: TextIO | None = None,
) -> int:
    """``esrc migrate``: bring the schema of the store ``url`` names to the version the
    installed backend needs and say whether it was created, upgraded or found current
    (nothing when ``quiet``); return 0.

    With ``check``, change nothing: return 0 when the schema is current and
    :data:`EXIT_MIGRATION_DUE` when it is missing or older. With ``sql``, connect to
    nothing and print the statements that create the schema in an empty database,
    each ending with ``;``. With ``as_json``, one JSON document: ``{"store",
    "outcome", "before", "after"}``, ``{"store", "version", "target", "due"}`` for
    ``check``, ``{"statements": [...]}`` for ``sql``.
    """
    out = out or sys.stdout
    where = mask_url(url)
    store = open_store(url, options, inspecting=check or sql)
    try:
        migratable = _migratable(store, url)
        if sql:
            statements = list(migratable.schema_sql())
            if as_json:
                write_document(out, {"statements": statements})
            else:
                out.writelines(f"{statement};\n\n" for statement in statements)
            return 0
        if check:
            state = migratable.schema_state()
            if as_json:
                document = {"version": state.version, "target": state.target, "due": state.due}
                write_document(out, {"store": where} | document)
            elif not quiet:
                out.write(f"esrc migrate: {_state_said(state, where)}\n")
            return EXIT_MIGRATION_DUE if state.due else 0
        result = migratable.migrate()
    finally:
        store.close()
    if as_json:
        write_document(
            out,
            {
                "store": where,
                "outcome": str(result.outcome),
                "before": result.before,
                "after": result.after,
            },
        )
    elif not quiet:
        out.write(f"esrc migrate: {_said(result, where)}\n")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    if args.check and args.sql:
        raise UsageError("give --check or --sql, not both")
    return migrate(
        store_url(args),
        dict(args.store_option),
        check=args.check,
        sql=args.sql,
        as_json=args.json,
        quiet=args.quiet,
    )


def _migrate_arguments(parser: argparse.ArgumentParser) -> None:
    store_arguments(parser)
    parser.add_argument(
        "--check",
        action="store_true",
        help=f"change nothing; exit {EXIT_MIGRATION_DUE} when a migration is due, 0 when not",
    )
    parser.add_argument(
        "--sql",
        action="store_true",
        help="connect to nothing; print the statements that create the schema in an empty database",
    )
    output_arguments(parser, json_help="print one JSON document")


COMMANDS = (
    Command(
        "migrate",
        "create or upgrade a store's tables (idempotent)",
        _migrate_arguments,
        _migrate,
        STORE_ENVIRONMENT,
        "Create or upgrade a store's tables ahead of time, and say whether they were\n"
        "created, upgraded or already current. Idempotent, and safe to run from several\n"
        f"processes at once. --check changes nothing and exits {EXIT_MIGRATION_DUE} when a "
        "migration\nis due; --sql prints the statements that create the tables, for a "
        "database\nadministrator to run.",
    ),
)
"""``esrc migrate``."""
