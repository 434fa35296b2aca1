"""TESS from --manual_dir (see tess_dataset_builder.py)."""
