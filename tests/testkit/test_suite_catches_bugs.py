"""The acceptance suite catches real bugs: run it, in a separate pytest process, against
the toy stores that are broken on purpose (tests/plugins/esrc_toy/src/esrc_toy/broken.py)
and check that the tests named for each bug fail, while the working toy store passes
everything."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

pytest_plugins = ["pytester"]

# What both suite modules below share: the imports and the state machine tuned for a
# proof rather than for debugging (a fixed seed, the same examples every run, and no
# shrinking of the failure it finds).
_HEADER = """
import uuid

import hypothesis
import pytest

from esrc_core import BridgedEventStore, open_event_store
from esrc_testkit import AsyncEventStoreAcceptance, EventStoreAcceptance, capabilities_of
from esrc_testkit.machines import DEFAULT_SETTINGS

TUNED = hypothesis.settings(
    DEFAULT_SETTINGS,
    derandomize=True,
    database=None,
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
)
"""

# The module a backend author would write.
SUITE_MODULE = (
    _HEADER
    + """

class TestStore(EventStoreAcceptance):
    capabilities = capabilities_of("{scheme}://")
    state_machine_settings = TUNED

    @pytest.fixture
    def store_factory(self):
        yield lambda: open_event_store(f"{scheme}://{{uuid.uuid4().hex}}")

    def reopen(self, store):
        return open_event_store(store.url)
"""
)

# The same for the async suite: the toy store's async face is the sync store run
# through esrc's own bridge, as a backend without an asyncio driver would offer it.
ASYNC_SUITE_MODULE = (
    _HEADER
    + """

class TestAsyncStore(AsyncEventStoreAcceptance):
    capabilities = capabilities_of("{scheme}://")
    state_machine_settings = TUNED

    @pytest.fixture
    def async_store_factory(self):
        async def open_empty():
            return BridgedEventStore(open_event_store(f"{scheme}://{{uuid.uuid4().hex}}"))

        return open_empty
"""
)

# Every bug must fail at least these tests; other tests may fail too.
MUST_FAIL = {
    "toy-noversioncheck": {
        "test_append_at_stale_version_raises_and_changes_nothing",
        "test_append_ahead_of_the_stream_raises",
        "test_concurrent_appends_at_one_version_exactly_one_wins",
        "test_repository_round_trip",
        "test_state_machine",
    },
    "toy-unordered": {
        "test_outbox_returns_sequential_writes_in_commit_order",
        "test_outbox_order_is_consistent_with_versions",
        "test_marked_events_do_not_come_back",
        "test_relay_publishes_everything_in_order",
        "test_relay_during_concurrent_writes_sees_every_event_once",
        "test_state_machine",
    },
    "toy-nonatomic": {
        "test_malformed_batch_is_atomic[name]",
        "test_malformed_batch_is_atomic[data]",
        "test_malformed_batch_is_atomic[metadata]",
        "test_state_machine",
    },
    "toy-pagegap": {
        "test_iter_events_reads_every_event_in_order_across_pages",
        "test_iter_events_starts_after_from_version",
        "test_iter_events_returns_exactly_what_was_appended",
        "test_appends_during_iteration_do_not_disturb_it",
        "test_load_stream_without_snapshots_reads_every_event",
        "test_load_stream_gives_the_latest_snapshot_and_the_events_after_it",
        "test_repository_loads_a_stream_of_several_pages",
    },
    "toy-staysopen": {
        "test_with_block_closes_the_store",
    },
    "toy-offbyone": {
        "test_read_from_version_returns_only_later_events",
        "test_repository_snapshot_policy",
        "test_repository_without_load_snapshots_replays_every_event",
        "test_state_machine",
    },
    "toy-streamorder": {
        "test_outbox_returns_sequential_writes_in_commit_order",
        "test_events_appended_later_come_after",
        "test_relay_publishes_everything_in_order",
        "test_relay_during_concurrent_writes_sees_every_event_once",
        "test_state_machine",
    },
    "toy-snapshotkey": {
        "test_snapshots_belong_to_one_stream",
        "test_snapshots_of_42_and_str_42_stay_apart",
        "test_state_machine",
    },
    "toy-overmark": {
        "test_marking_an_older_prefix_does_not_move_progress_back",
        "test_runner_stops_at_a_failed_publish_and_resumes_from_it",
        "test_state_machine",
    },
    "toy-keepsnapshot": {
        "test_snapshot_at_the_same_version_replaces",
        "test_snapshots_of_42_and_str_42_stay_apart",
        "test_state_machine",
    },
    "toy-sharedlock": {
        "test_only_one_holder_per_relay_name",
        "test_release_lets_the_next_holder_in",
        "test_acquire_waits_up_to_its_timeout",
        "test_state_machine",
    },
    "toy-racycheck": {
        "test_concurrent_history_is_linearizable",
        "test_concurrent_appends_at_one_version_exactly_one_wins",
    },
    "toy-splitunits": {
        "test_one_conflicting_stream_fails_the_whole_unit[stale-1]",
        "test_one_conflicting_stream_fails_the_whole_unit[exists-2]",
        "test_one_conflicting_stream_fails_the_whole_unit[missing-1]",
        "test_concurrent_units_creating_one_stream_exactly_one_wins",
        "test_concurrent_conflicting_units_one_wins_per_stream_version",
        "test_unit_of_work_saves_aggregates_of_two_repositories",
    },
    "toy-leakydelete": {
        "test_relays_never_get_deleted_events_they_had_not_passed",
        "test_deletion_during_concurrent_appends",
    },
    "toy-eagertruncate": {
        "test_truncation_keeps_events_a_relay_has_not_passed",
    },
}

# The late-commit tests run only against stores that can hold a commit (the
# hold-commits capability): toy-lateskip is the toy store of esrc_toy.late, whose
# appends commit late when held, with an outbox that reads by position.
MUST_FAIL["toy-lateskip"] = {
    "test_append_committing_late_is_relayed_once_in_one_order",
    "test_appends_released_in_reverse_order_are_each_relayed_once",
    "test_relay_during_a_held_append_publishes_everything_once",
}

# What the async suite must catch: the same bugs through the async API (the outbox
# ones are the sync suite's alone), and the task race of the async suite's own.
ASYNC_MUST_FAIL = {
    "toy-noversioncheck": {
        "test_append_at_stale_version_raises_and_changes_nothing",
        "test_concurrent_appends_at_one_version_exactly_one_wins",
        "test_repository_round_trip",
        "test_tasks_racing_at_one_version_exactly_one_wins",
        "test_state_machine",
    },
    "toy-nonatomic": {
        "test_malformed_batch_is_atomic[name]",
        "test_state_machine",
    },
    "toy-pagegap": {
        "test_iter_events_reads_every_event_in_order_across_pages",
        "test_load_stream_gives_the_latest_snapshot_and_the_events_after_it",
        "test_repository_loads_a_stream_of_several_pages",
    },
    "toy-sharedlock": {
        "test_only_one_holder_per_relay_name",
        "test_release_lets_the_next_holder_in",
        "test_state_machine",
    },
    # Its window between check and write is a wait on the loop under the bridge, so
    # tasks interleave there as threads do.
    "toy-racycheck": {
        "test_concurrent_tasks_history_is_linearizable",
        "test_tasks_racing_at_one_version_exactly_one_wins",
        "test_concurrent_appends_at_one_version_exactly_one_wins",
    },
}

# Tests none of the bugs touches: they must still pass, so the failures above come
# from the bug and not from a suite that fails on anything.
UNTOUCHED = {
    "test_add_then_read_returns_exactly_the_events",
    "test_invalid_ids_are_rejected_by_every_method",
    "test_latest_snapshot_has_the_highest_version",
    "test_missing_aggregate_cannot_be_read",
}


def run_suite(pytester: pytest.Pytester, scheme: str, module: str = SUITE_MODULE) -> dict[str, str]:
    """Run the acceptance suite of ``module`` against ``scheme://`` in a new pytest
    process; return each test's outcome (passed, failed, error or skipped) by test
    name."""
    pytester.makepyfile(test_store=module.format(scheme=scheme))
    report = pytester.path / "report.xml"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--junitxml={report}")
    assert report.exists(), f"the inner pytest run wrote no report:\n{result.stdout.str()}"
    outcomes: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            if case.find(tag) is not None:
                outcome = "failed" if tag == "failure" else tag
        outcomes[str(case.get("name"))] = outcome
    assert outcomes, f"the inner pytest run collected nothing:\n{result.stdout.str()}"
    return outcomes


def test_suite_passes_on_the_working_toy_store(pytester: pytest.Pytester) -> None:
    """The working toy store passes every test of the capabilities it declares; only
    the tests of the operator views, paged reads, reading ahead, units of work and
    stream deletion, which it does not offer, skip (its repository loads take the path of stores
    without paged reads)."""
    from esrc_testkit import (
        InspectionAcceptance,
        LateCommitAcceptance,
        OutboxAcceptance,
        RetentionAcceptance,
        StreamingAcceptance,
        UnitOfWorkAcceptance,
    )

    optional = {
        name
        for suite in (
            InspectionAcceptance,
            LateCommitAcceptance,
            StreamingAcceptance,
            UnitOfWorkAcceptance,
            RetentionAcceptance,
        )
        for name in vars(suite)
        if name.startswith("test_")
    } | {name for name in vars(OutboxAcceptance) if name.startswith("test_read_ahead_")}
    outcomes = run_suite(pytester, "toy")
    not_passed = {
        name: o
        for name, o in outcomes.items()
        if o != "passed" and not (o == "skipped" and name.split("[")[0] in optional)
    }
    assert not not_passed
    assert {name for names in MUST_FAIL.values() for name in names} <= set(outcomes)


@pytest.mark.parametrize("scheme", sorted(MUST_FAIL))
def test_suite_catches_the_broken_store(pytester: pytest.Pytester, scheme: str) -> None:
    """The tests named for the store's bug fail; tests the bug cannot touch pass; no
    test errors out in setup instead of failing."""
    outcomes = run_suite(pytester, scheme)
    failed = {name for name, outcome in outcomes.items() if outcome == "failed"}
    missed = sorted(MUST_FAIL[scheme] - failed)
    assert not missed, f"{scheme}: these tests should have failed but did not: {missed}"
    errors = sorted(name for name, outcome in outcomes.items() if outcome == "error")
    assert not errors, f"{scheme}: these tests errored instead of failing: {errors}"
    wrongly_failed = sorted(UNTOUCHED & failed)
    assert not wrongly_failed, f"{scheme}: these tests should have passed: {wrongly_failed}"


def test_async_suite_passes_on_the_working_toy_store(pytester: pytest.Pytester) -> None:
    """The async suite on the working toy store's async face: nothing fails."""
    outcomes = run_suite(pytester, "toy", ASYNC_SUITE_MODULE)
    failed = sorted(name for name, o in outcomes.items() if o in ("failed", "error"))
    assert not failed, f"the working toy store failed: {failed}"
    assert {name for names in ASYNC_MUST_FAIL.values() for name in names} <= set(outcomes)


@pytest.mark.parametrize("scheme", sorted(ASYNC_MUST_FAIL))
def test_async_suite_catches_the_broken_store(pytester: pytest.Pytester, scheme: str) -> None:
    """The async suite fails the tests named for the store's bug, through the async API."""
    outcomes = run_suite(pytester, scheme, ASYNC_SUITE_MODULE)
    failed = {name for name, outcome in outcomes.items() if outcome == "failed"}
    missed = sorted(ASYNC_MUST_FAIL[scheme] - failed)
    assert not missed, f"{scheme}: these tests should have failed but did not: {missed}"
    errors = sorted(name for name, outcome in outcomes.items() if outcome == "error")
    assert not errors, f"{scheme}: these tests errored instead of failing: {errors}"
    wrongly_failed = sorted(UNTOUCHED & failed)
    assert not wrongly_failed, f"{scheme}: these tests should have passed: {wrongly_failed}"
