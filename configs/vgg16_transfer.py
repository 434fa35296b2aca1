"""Gomes et al.: VGG16 transfer learning on 128×128×3 Mel images, combined corpus.

The paper (SPEC section 4): Keras `VGG16(include_top=False, weights=
'imagenet', input_shape=(128, 128, 3))` → flatten → dropout 0.5 → dense
softmax over 8; the same images, training set-up and stratified 5-fold
protocol as the custom CNN (configs/cnn_melspec.py: Adam lr 5e-5, batch 32,
≤ 100 epochs, early stopping patience 10 on validation loss); accuracy
65.9 ± 1.2 %.

Pretrained weights cannot be downloaded here: point
`--config.model.pretrained_path` at a local copy of Keras's
`vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5`. Then the base is frozen
(`freeze_base=None` → frozen iff pretrained; the paper trains only the head:
its custom CNN "needs to learn a higher number of parameters"). Without the
file the base starts from random weights, is trained, and a warning says so.
14,780,232 parameters (65,544 of them in the head).

Config argument: paper (default) | synthetic | tiny (see configs/common.py).
"""
from ml_collections import config_dict

from configs import cnn_melspec
from configs import common


def get_config(arg: str = 'paper'):
  common.check_arg(arg, ('paper', 'combined'))
  c = common.base()
  c.reference = ('Gomes et al. VGG16 transfer learning: accuracy 65.9 ± 1.2 % (stratified '
                 '5-fold, combined CREMA-D + RAVDESS + SAVEE + TESS, 8 emotions)')
  c.features = cnn_melspec.mel_image_features(channels=3)
  c.model = common.model(
      'vgg16_transfer',
      block_features=((64, 64), (128, 128), (256, 256, 256), (512, 512, 512),
                      (512, 512, 512)),
      pretrained_path=config_dict.placeholder(str),   # a Keras ..._notop.h5 file
      freeze_base=config_dict.placeholder(bool),      # None: frozen iff pretrained
      dropout=0.5, hidden_units=(), hidden_dropout=0.0, mask_input=True)
  cnn_melspec.gomes_training(c, arg)
  if arg == 'synthetic':
    c.model.block_features = ((8, 8), (16, 16), (32, 32, 32), (64, 64, 64), (64, 64, 64))
  elif arg == 'tiny':
    c.model.block_features = ((4, 4), (8, 8), (8, 8, 8), (8, 8, 8), (8, 8, 8))
  return c
