"""Ranjan et al.: 1-D CNN + LSTM on MFCC, zero-crossing rate and chroma.

The paper (SPEC section 4): the combined CREMA-D + RAVDESS + SAVEE + TESS set
(12,162 files, 8 emotions), librosa MFCC + zero-crossing rate + chroma_stft,
1-D convolutions → LSTM → dense → softmax, a train/test split, accuracy
81 % and a per-class report. Everything else is unstated; our choices:

- features: `mfcc_zcr_chroma` per frame (20 MFCC, librosa's default, + 1 ZCR
  + 12 chroma = 33 channels), librosa's framing kept in time at 16 kHz, 3 s
  segments (130 frames), z-scored with training statistics (the paper's
  "normalization, feature scaling"), segment posteriors averaged per file;
- model: the widths of the Keras recipe these features come from (conv 256,
  256, 128, 64 kernel 5 + max-pool 5/2, LSTM 128, dense 32, dropout 0.2/0.3),
  678,632 parameters (see ser_jax/models/cnn1d_lstm.py);
- split: the paper's test set holds 4,340 of the 12,162 files (35.7 %), so a
  stratified 55/10/35 split: the 65 % the paper trained on, of which 10
  points validate (model selection on validation accuracy, early stopping
  on validation loss, patience 10);
- Adam lr 1e-3 (Keras's default), batch 32, up to 50 epochs.

Config argument: paper (default) | synthetic | tiny (see configs/common.py).
"""
import ml_collections
from ml_collections import config_dict

from configs import common


def get_config(arg: str = 'paper'):
  common.check_arg(arg, ('paper', 'combined'))
  c = common.base()
  c.data = common.data(common.COMBINED)
  c.protocol = common.protocol('stratified_split', fractions=(0.55, 0.10, 0.35))
  c.reference = ('Ranjan et al.: accuracy 81 % (macro F1 0.80) on the combined '
                 'CREMA-D + RAVDESS + SAVEE + TESS set, 8 emotions, 4,340 test files')

  c.features = ml_collections.ConfigDict(dict(
      name='mfcc_zcr_chroma', sample_rate=16_000, n_fft=1536,
      win_length=config_dict.placeholder(int), hop_length=372, window='hann', center=True,
      pad_mode='constant', n_mels=128, fmin=0.0, fmax=config_dict.placeholder(float),
      n_mfcc=20, top_db=80.0, amin=1e-10, lifter=0.0, n_chroma=12, tuning=0.0,
      chroma_norm=float('inf'), zcr_threshold=1e-10,
      num_frames=130, segment_seconds=3.0, segment_hop_seconds=3.0,
      max_segments=0,    # 0: every segment of a file
      last_segment_at_end=False))   # the last one starts 3 s after the one before

  c.model = common.model(
      'cnn1d_lstm', conv_features=(256, 256, 128, 64), conv_kernel=5, pool_window=5,
      pool_stride=2, block_dropout=0.2, dropout_after_block=2, lstm_units=128,
      lstm_layers=1, hidden_units=(32,), hidden_dropout=0.3)

  c.optimizer = 'adam'
  c.learning_rate = 1e-3
  c.batch_size = 32
  c.num_epochs = 50
  c.selection = ml_collections.ConfigDict(dict(metric='val_wa', mode='max'))
  c.early_stopping = ml_collections.ConfigDict(dict(
      metric='val_loss', mode='min', patience=10, min_delta=0.0))

  if arg in ('synthetic', 'tiny'):
    common.use_synthetic(c, arg)
    if arg == 'synthetic':
      c.model.conv_features = (64, 64, 32, 32)
      c.model.lstm_units = 64
      c.num_epochs = 15
      c.early_stopping.patience = 0
    else:
      c.features.segment_seconds = c.features.segment_hop_seconds = 1.0
      c.features.num_frames = 44                  # ceil(16000 / 372)
      c.model.conv_features = (8, 8)
      c.model.lstm_units = 8
      c.model.hidden_units = (8,)
  return c
