"""The test suite (pytest); `helpers` and `reference` are imported as `tests.helpers`, `tests.reference`."""
