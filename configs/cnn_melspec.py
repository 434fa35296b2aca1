"""Gomes et al.: custom CNN on 128×128 Mel-spectrogram images, combined corpus.

The paper (SPEC section 4): the combined CREMA-D + RAVDESS + SAVEE + TESS set
(12,162 files, 8 emotions); librosa Mel spectrogram of the 2.5 s from 0.5 s
of each file, drawn in dB, loaded as a 128×128 RGB image and divided by 255;
four blocks of conv 5×5 'same' (256, 256, 128, 64 maps) + max-pool, two
dropouts of 0.3, dense softmax over 8; 2,813,672 trainable parameters; Adam
lr 5e-5, batch 32, up to 100 epochs, early stopping when the validation loss
has not improved for 10 epochs, best weights restored; stratified 5-fold;
accuracy 68.7 ± 0.8 %.

Our reading: the `mel_image` front end makes the 128 (time) × 128 (Mel)
image directly (hop 314: 2.5 s → 128 frames, no picture resizing), in dB
scaled to [0, 1] like pixel / 255, with 3 identical channels (the paper's
RGB input; this gives its exact parameter count), z-scored with training
statistics. The model (ser_jax/models/cnn_melspec.py) matches the paper's
count exactly with 5×5 pooling at stride 2, a 32-unit dense layer and the
dropouts after block 3 and after that dense layer. Protocol: stratified
5-fold (`--config.protocol.folds=all` runs all five; each fold holds out a
stratified 10 % of its training part as the validation set for early
stopping and the best-weights choice, by validation loss as Keras's
`restore_best_weights`). Segments: 3 s (the 0.5 s offset + 2.5 s), one image
per 3 s of a file, posteriors averaged (the paper keeps only the first).

Config argument: paper (default) | synthetic | tiny (see configs/common.py).
"""
import ml_collections
from ml_collections import config_dict

from configs import common


def mel_image_features(channels: int = 3) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name='mel_image', sample_rate=16_000, offset_seconds=0.5, duration_seconds=2.5,
      image_frames=128, n_fft=1536, win_length=config_dict.placeholder(int), hop_length=314,
      window='hann', center=True, pad_mode='constant', n_mels=128, fmin=0.0,
      fmax=config_dict.placeholder(float), top_db=80.0, amin=1e-10, image_scale='unit',
      channels=channels, segment_seconds=3.0, segment_hop_seconds=3.0,
      max_segments=1,  # the first 3 s of every file, as in the paper
      last_segment_at_end=False))


def tiny_images(c):
  """32 × 32 images of 1 s segments (tests)."""
  c.features.update(dict(offset_seconds=0.0, duration_seconds=1.0, image_frames=32,
                         hop_length=516, n_mels=32, segment_seconds=1.0,
                         segment_hop_seconds=1.0))   # 1 + 16000 // 516 = 32 frames


def gomes_training(c, arg: str):
  """The deep models' training set-up of Gomes et al. and their 5-fold protocol."""
  c.data = common.data(common.COMBINED)
  c.protocol = common.protocol('stratified_kfold', folds='all', k=5, val_fraction=0.1)
  c.optimizer = 'adam'
  c.learning_rate = 5e-5
  c.batch_size = 32
  c.num_epochs = 100
  c.selection = ml_collections.ConfigDict(dict(metric='val_loss', mode='min'))
  c.early_stopping = ml_collections.ConfigDict(dict(
      metric='val_loss', mode='min', patience=10, min_delta=0.0))
  if arg in ('synthetic', 'tiny'):
    common.use_synthetic(c, arg)
    c.learning_rate = 1e-3     # 5e-5 learns too little in a few CPU minutes
    if arg == 'synthetic':
      c.num_epochs = 15
      c.early_stopping.patience = 0
    else:
      tiny_images(c)
  return c


def get_config(arg: str = 'paper'):
  common.check_arg(arg, ('paper', 'combined'))
  c = common.base()
  c.reference = ('Gomes et al. custom CNN: accuracy 68.7 ± 0.8 % (stratified 5-fold, '
                 'combined CREMA-D + RAVDESS + SAVEE + TESS, 8 emotions); their SVM '
                 '65.3 ± 0.6 % (76.1 ± 1.2 % with augmentation), VGG16 65.9 ± 1.2 %')
  c.features = mel_image_features(channels=3)
  c.model = common.model(
      'cnn_melspec', conv_features=(256, 256, 128, 64), conv_kernel=(5, 5),
      pool_window=(5, 5), pool_stride=(2, 2), block_dropout=0.3, dropout_after_block=2,
      hidden_units=(32,), hidden_dropout=0.3, mask_input=True)
  gomes_training(c, arg)
  if arg == 'synthetic':
    c.model.conv_features = (16, 16, 16, 16)
    c.num_epochs = 20
  elif arg == 'tiny':
    c.model.conv_features = (4, 4, 4, 4)
    c.model.hidden_units = (8,)
  return c
