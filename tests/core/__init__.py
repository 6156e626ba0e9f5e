"""Unit tests of esrc_core, run against the real in-memory backend."""
