"""Helpers shared by the test modules (``from tests.helpers.samples import make_sample``)."""
