"""Drift monitoring of a model version: `drift.pbtxt` (declaration), its reference dataset
(reference), the profiles and tracker built from them at load (tracking), all off the hot path.
The executor threads count every executed batch in Rust (`_core.DriftTracker`)."""
