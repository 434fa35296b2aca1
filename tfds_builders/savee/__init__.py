"""SAVEE from --manual_dir, as `ser_savee` (see savee_dataset_builder.py)."""
