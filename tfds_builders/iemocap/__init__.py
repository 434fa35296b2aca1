"""IEMOCAP builder (see iemocap_dataset_builder.py), label parser and subset counts."""
