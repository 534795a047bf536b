"""Online feature lookup for a model version: its features.pbtxt (declaration.py), its views'
snapshot files (sources.py), and the plan and embedded store that the native executor gathers
from at batch forming, with hot reload (store.py). The per-row work is Rust
(`_core.FeaturePlan`, `_core.FeatureStore`); this package decides and loads, once per change.
"""
