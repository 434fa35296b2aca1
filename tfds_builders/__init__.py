"""TFDS builders of ser_jax: one package per corpus.

Importing this package registers every builder with TFDS.
"""
from tfds_builders.ser_synthetic.ser_synthetic_dataset_builder import Builder as SerSynthetic  # noqa: F401
from tfds_builders.iemocap.iemocap_dataset_builder import Builder as Iemocap  # noqa: F401
