"""CREMA-D audio from --manual_dir, as `ser_crema_d` (see crema_d_dataset_builder.py)."""
