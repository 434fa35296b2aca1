"""Sen et al.: 2-D CNN + BiLSTM on 40 MFCC, RAVDESS + CREMA-D, 8 emotions.

The paper (SPEC section 4): 40 MFCC per frame (librosa), clips trimmed or
zero-padded to 3 s (~130 frames); conv 32 3×3 → max-pool 2×2 → conv 64 3×3 →
max-pool 2×2 → dropout 0.3 → BiLSTM 128 → dense ReLU → softmax over 8
emotions; Adam lr 1e-3, batch 32, 50 epochs, early stopping on validation
loss with patience 5, the checkpoint with the best validation accuracy kept;
stratified 80/10/10 split of RAVDESS + CREMA-D; accuracy 82.4 %.

Our reading (709,128 parameters): 'valid' convolutions, the BiLSTM over the
pooled time axis with the 8 pooled coefficients × 64 maps as features, dense
128 (the paper's "128 units" is the BiLSTM; the dense width is unstated, 128
as the issue's reference). Features: `mfcc` front end (librosa semantics; the
paper's 22.05 kHz hop 512 kept in time at 16 kHz, 3 s → 130 frames). Only the
first 3 s of a file are used, as in the paper (`features.max_segments=1`;
`--config.features.max_segments=0` takes every 3 s segment and averages their
posteriors).

Config argument: paper (default; `ravdess_crema_d` is the same) | synthetic | tiny
(see configs/common.py).
"""
import ml_collections
from ml_collections import config_dict

from configs import common


def get_config(arg: str = 'paper'):
  common.check_arg(arg, ('paper', 'ravdess_crema_d'))
  c = common.base()
  c.data = common.data(('ser_crema_d', 'ravdess'))
  # Stratified 80/10/10 utterance split (speakers shared, as in the paper);
  # 'group_split' is the speaker-independent variant.
  c.protocol = common.protocol('stratified_split', fractions=(0.8, 0.1, 0.1))
  c.reference = ('Sen et al.: accuracy 82.4 % (precision 81.3, recall 80.7, F1 80.9), '
                 'RAVDESS + CREMA-D, 8 emotions, stratified 80/10/10 split')

  # librosa.feature.mfcc(n_mfcc=40) at 22.05 kHz (n_fft 2048, hop 512) kept in
  # time at 16 kHz: n_fft 1536 (96 ms), hop 372 (23.25 ms): 3 s -> 130 frames.
  c.features = ml_collections.ConfigDict(dict(
      name='mfcc', sample_rate=16_000, n_fft=1536, win_length=config_dict.placeholder(int),
      hop_length=372, window='hann', center=True, pad_mode='constant', n_mels=128,
      fmin=0.0, fmax=config_dict.placeholder(float), n_mfcc=40, top_db=80.0, amin=1e-10,
      lifter=0.0, num_frames=130, segment_seconds=3.0, segment_hop_seconds=3.0,
      max_segments=1,  # the first 3 s of every file, as in the paper
      last_segment_at_end=False))

  c.model = common.model(
      'cnn2d_bilstm', conv_features=(32, 64), conv_kernel=(3, 3), conv_padding='VALID',
      pool=(2, 2), dropout=0.3, lstm_units=128, hidden_units=(128,), hidden_dropout=0.0)

  c.optimizer = 'adam'
  c.learning_rate = 1e-3
  c.batch_size = 32
  c.num_epochs = 50
  c.selection = ml_collections.ConfigDict(dict(metric='val_wa', mode='max'))
  c.early_stopping = ml_collections.ConfigDict(dict(
      metric='val_loss', mode='min', patience=5, min_delta=0.0))

  if arg in ('synthetic', 'tiny'):
    common.use_synthetic(c, arg)
    if arg == 'synthetic':
      c.num_epochs = 15
      c.early_stopping.patience = 0
    else:
      c.features.segment_seconds = c.features.segment_hop_seconds = 1.0
      c.features.num_frames = 44                  # ceil(16000 / 372)
      c.model.conv_features = (4, 8)
      c.model.lstm_units = 8
      c.model.hidden_units = (8,)
  return c
