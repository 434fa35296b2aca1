"""The embedded synthetic corpus (see ser_synthetic_dataset_builder.py)."""
