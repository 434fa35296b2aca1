"""Bhushan et al. Model 1: additive-attention CNN-BiLSTM with gender embedding.

The same encoder, features, training and protocol as Model 2
(configs/selfattn_gender.py: 40 log-Mel + Δ + ΔΔ, 3 s segments, conv 128 →
five conv 256 → linear 768 → BiLSTM 128, gender embedding 300 → dense 64,
Nadam lr 1e-4, batch 40, IEMOCAP improvised 4 classes, 10-fold leave-one-
speaker-out × 5 seeds), but the BiLSTM outputs are pooled over time by
additive (Bahdanau-style) attention, softmax_t(vᵀ tanh(W h_t + b)), with a
256-wide projection, instead of self-attention + average pooling.
9,389,020 parameters at paper size.

Config argument: iemocap (default) | combined | synthetic | tiny, as selfattn_gender.
"""
from configs import selfattn_gender


def get_config(arg: str = 'iemocap'):
  c = selfattn_gender.get_config(arg)
  c.model.name = 'attention_gender'
  if c.reference:
    c.reference = ('Bhushan et al. Model 1 (attention): UAR 59.43 ± 11.57 %, WA 62.92 % '
                   '(IEMOCAP improvised, 4 classes, 10-fold LOSO × 5 seeds); Model 2 '
                   '(self-attention) UAR 62.86 ± 9.43 %')
    if arg == 'combined':
      c.reference += ' (not this corpus or protocol)'
  return c
