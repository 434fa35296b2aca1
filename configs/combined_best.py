"""ser_jax's own recipe for the honest protocol: the combined four corpora, 8 emotions,
speaker-grouped 5-fold (`group_kfold`, split_seed 0, the table's folds).

Every setting was chosen on validation speakers only. Over the 5 folds it gives
test UAR 69.6 ± 2.5 % and WA 65.3 ± 4.1 % (AMD EPYC, 2 cores, 25.9–30.2 min a
fold with other work on the machine at times; docs/results.md, row 54: without
mixup, adopted by a rule written before the run, mean validation UAR 66.03 > 65.72 %
with it, row 52: test UAR 69.0 ± 2.7 %, WA 64.6 ± 4.1 %, 20.8–27.8 min a fold, folds
1–4 alone;
row 52's one 3 s segment per 3 s of audio was adopted the same way, 65.72 > 64.90 %
with a 1.5 s hop, row 46; row 46's speed copies 64.90 > 62.92 %; without them (v2, with mixup and the
1.5 s hop), row 13: test UAR 65.7 ± 2.4 %, WA 62.0 ± 3.2 %), transductive since it uses per-speaker
normalisation (without it, inductive: test UAR 61.5 ± 0.8 %, WA 56.7 ± 4.1 % over
the 5 folds; docs/results.md, row 17). Removing class balance lowered the mean
validation UAR (61.52 %, row 45), so that stays; removing SpecAugment lowered it
(64.30 against 64.90 %, row 50), so it stays; removing the overlapping segments
(row 52) and then mixup (row 54) raised it, so they went. Ending each file's last
segment at the file's end (`features.last_segment_at_end=True`, row 55) tied on it
(65.87 against 66.03 %; validation WA 64.00 against 62.25 %), so the last segment
stays zero-padded. Half the network's width (conv 16/32, BiLSTM 64, dense 64, row 59)
validated lower (64.09 %) and tested level (69.7 / 65.0 %) at 2.4 times the speed, so
the width stays (pass those three fields for the faster trade). Fold 0 re-run on an
AVX2-only EPYC (row 58) took about 24 min alone. The parts, each a config field of the
neural trainer:

- Sen et al.'s 2-D CNN + BiLSTM on 40 MFCC (`configs/cnn2d_bilstm.py`), which
  trains a pass over the combined corpora's original files in under a minute on
  2 CPU cores (an epoch with the two speed copies below is three passes);
- per-speaker feature normalisation (`speaker_norm`): every speaker's frames
  z-scored with that speaker's own statistics, test speakers included
  (transductive: from their unlabelled audio; docs/results.md has the shipped
  network with and without it on fold 0). predict takes the files of one call as one
  speaker's recordings; export refuses;
- class-balanced loss weights (`class_balance`: calm and surprised are rare);
- SpecAugment masks (`augment.features`); mixup (`mixup_alpha`) is off since row
  54;
- every 3 s segment of a file, end to end (no overlap; most files are shorter
  than 3 s and are one zero-padded segment), posteriors averaged per utterance;
- two speed-perturbed copies of every training file (0.9× and 1.1×), 12 epochs
  with patience 4;
- model selection and early stopping on validation UAR;
- an exponential moving average of the weights (`ema_decay=0.999`, with the
  default warm-up `ema_warmup=10`: until update 8,990 the average spans about the
  last t / 9 of the t updates so far, 1,000 updates after), which is what is
  evaluated and selected: on fold 0's validation
  speakers the best UAR rose from 64.3 to 64.7 % and the epoch-to-epoch curve
  steadied (docs/results.md); a longer horizon (ema_decay=0.9997, ema_warmup=4:
  about t / 3 updates) validated lower in all 5 folds, 65.77 against 66.03 %
  (row 57), so the default warm-up stays.

`:inductive` is the recipe for users who cannot normalise by speaker (one file at a
time, or speakers with too little audio): the same without `speaker_norm` (and,
like the default since row 54, without mixup), with 3 s segments at a 1.5 s hop (without the overlap, row 53,
mean validation UAR 59.96 < 61.21 %), with the speed copies (Ko et al. 2015;
`augment.offline.speed_rates`), trained 12 epochs (36 passes over the original
files) with patience 4. Each part was adopted by a rule written before its run,
on mean validation UAR over the 5 folds: the speed copies 60.8 > 59.4 % (row 29),
then dropping mixup 61.2 > 60.8 % (row 47). It gives test UAR 64.6 ± 3.2 %, WA
60.1 ± 5.1 % over the 5 folds (AMD EPYC, 2 cores, 14.5–26.1 min a fold;
docs/results.md, row 47; with mixup, row 29: 64.5 ± 2.4 / 59.6 ± 4.0).

Config argument: combined (default) | inductive | synthetic | tiny, comma-combined
with inductive, e.g. `tiny,inductive` (see configs/common.py).
"""
import ml_collections

from configs import cnn2d_bilstm
from configs import common


def get_config(arg: str = 'combined'):
  inductive, arg = common.split_arg(arg, 'inductive', ('combined',))
  c = cnn2d_bilstm.get_config('paper' if arg == 'combined' else arg)
  c.reference = ('issue #12 target: test WA and UAR >= 60 % as the mean over 5 '
                 'speaker-grouped folds of the combined corpora')
  c.speaker_norm = True
  c.class_balance = True
  c.mixup_alpha = 0.0   # row 54: mean validation UAR 66.03 without it, 65.72 with it
  c.ema_decay = 0.999
  c.augment.features.update(time_masks=2, time_mask_max_frames=12, freq_masks=2,
                            freq_mask_max_bins=6)
  c.selection = ml_collections.ConfigDict(dict(metric='val_uar', mode='max'))
  c.early_stopping = ml_collections.ConfigDict(dict(
      metric='val_uar', mode='max', patience=8, min_delta=0.0))
  # Every training file plus copies at 0.9x and 1.1x speed (Ko et al. 2015), so an
  # epoch is three passes over the originals: 12 epochs, patience 4 (row 46).
  c.augment.offline.update(enabled=True, noise_amplitude=None, stretch_rate=None,
                           pitch_steps=None, speed_rates=(0.9, 1.1))
  if arg == 'combined':
    c.num_epochs = 12
    c.early_stopping.patience = 4
    c.data = common.data(common.COMBINED)
    c.protocol = common.protocol('group_kfold', folds='all', k=5, val_fraction=0.1)
    # Every 3 s segment, end to end: row 52's mean validation UAR 65.72 against
    # 64.90 with a 1.5 s hop (row 46).
    c.features.segment_hop_seconds = 3.0
    c.features.max_segments = 0
  if inductive:
    c.speaker_norm = False
    if arg == 'combined':
      c.features.segment_hop_seconds = 1.5   # row 53: 3.0 s validates 59.96 < 61.21 %
  return c
