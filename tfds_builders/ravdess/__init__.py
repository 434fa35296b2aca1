"""RAVDESS speech (audio-only) from --manual_dir (see ravdess_dataset_builder.py)."""
