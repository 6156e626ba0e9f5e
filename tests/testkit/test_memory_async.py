"""The async acceptance suite on ``memory://``'s async face."""

from __future__ import annotations

import pytest

from esrc_core import AsyncEventStore, open_async_event_store
from esrc_testkit import AsyncEventStoreAcceptance, AsyncStoreFactory, capabilities_of


class TestMemoryAsyncStore(AsyncEventStoreAcceptance):
    """``memory://`` opened with ``open_async_event_store``."""

    capabilities = capabilities_of("memory://")

    @pytest.fixture
    def async_store_factory(self) -> AsyncStoreFactory:
        """Private stores: each open is new and empty."""

        async def open_empty() -> AsyncEventStore:
            return await open_async_event_store("memory://")

        return open_empty
