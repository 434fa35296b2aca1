"""TFDS builders of ser_jax: one package per corpus.

Importing this package registers every builder with TFDS.
"""
from tfds_builders.ser_synthetic.ser_synthetic_dataset_builder import Builder as SerSynthetic  # noqa: F401
from tfds_builders.iemocap.iemocap_dataset_builder import Builder as Iemocap  # noqa: F401
from tfds_builders.ravdess.ravdess_dataset_builder import Builder as Ravdess  # noqa: F401
from tfds_builders.crema_d.crema_d_dataset_builder import Builder as SerCremaD  # noqa: F401
from tfds_builders.tess.tess_dataset_builder import Builder as Tess  # noqa: F401
from tfds_builders.savee.savee_dataset_builder import Builder as SerSavee  # noqa: F401

# The corpora's TFDS names (what `--config.data.name` takes, '+'-joined for a union).
NAMES = tuple(b.name for b in (Ravdess, SerCremaD, Tess, SerSavee, Iemocap, SerSynthetic))
