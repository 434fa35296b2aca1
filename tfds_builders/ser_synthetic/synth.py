"""Source-filter synthesis of acted-emotion speech (numpy + scipy only).

Every utterance is a string of "syllables" (consonant onset + vowel) read from
one of a few fixed nonsense sentences, grouped into words and phrases with
pauses between them, produced by a classic source-filter model:

* Source: a Rosenberg glottal-flow-derivative pulse train at a time-varying f0
  with cycle-to-cycle jitter and shimmer, an open quotient that goes from tense
  (short, sharp pulses: bright) to lax/breathy (long, smooth pulses: strong
  first harmonic), plus pitch-synchronous aspiration noise (breathiness) and
  unvoiced noise for /h/ and stop aspiration.
* Filter: a cascade of five formant resonators (F1-F4 from a vowel table,
  F5 fixed) with linear transitions between targets, scaled by the speaker's
  vocal-tract length, and an extra spectral tilt (dB/octave above 500 Hz).  The
  filter is applied frame by frame in the STFT domain (32 ms Hann, 8 ms hop),
  which makes time-varying filtering vectorised and fast.
* Consonants: band-pass noise for fricatives (s, sh, f, v, z), closures with
  bursts and aspiration for stops, and reduced-amplitude voicing with their own
  formants for nasals and approximants.
* Recording: the active speech level is set from the speaker's recording level
  plus the emotion's loudness, a low noise floor is added, and peaks are
  soft-limited into [-1, 1].

Speakers have their own f0 (male about 100-130 Hz, female about 180-240 Hz),
vocal-tract length, speaking rate, voice quality, recording level and
expressiveness.  Emotions change prosody and voice quality *relative to the
speaker's own baseline* (so that held-out speakers remain recognisable): pitch
level, pitch range and the shape of the phrase contour (falling, flat, rising,
rise-fall), speaking rate and pauses, loudness and stress contrast, spectral
tilt and open quotient (tense vs breathy), jitter, shimmer and tremor, and a
slight formant shift (jaw opening / smiling).  Each utterance draws its own
parameters around the emotion's means with a shared "arousal" latent, and each
speaker has small idiosyncratic offsets per emotion, so the classes overlap
partly (calm/neutral, happy/surprised, fearful/sad, angry/happy) as in real
acted corpora.

Everything is deterministic: an utterance's random generator depends only on
(seed, speaker index, emotion index, take), never on generation order.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np
from scipy import signal

SAMPLE_RATE = 16_000

# Must equal `tfds_builders.common.UNIFIED_EMOTIONS` (checked by the builder);
# duplicated here so that this module needs neither TF nor TFDS.
EMOTIONS = ('neutral', 'calm', 'happy', 'sad', 'angry', 'fearful', 'disgust',
            'surprised')

# STFT used for the time-varying vocal-tract filter.
_NFFT = 512
_HOP = 128

# ---------------------------------------------------------------------------
# Phonetic inventory.

# Vowel formants F1-F4 (Hz) of an adult male (after Hillenbrand et al. 1995).
VOWELS = {
    'i': (342, 2322, 3000, 3657),
    'I': (427, 2034, 2684, 3618),
    'e': (476, 2089, 2691, 3649),
    'E': (580, 1799, 2605, 3677),
    'ae': (588, 1952, 2601, 3624),
    'a': (768, 1333, 2522, 3687),
    'O': (652, 997, 2538, 3486),
    'o': (497, 910, 2459, 3384),
    'U': (469, 1122, 2434, 3400),
    'u': (378, 997, 2343, 3357),
    'V': (623, 1200, 2550, 3557),
    'er': (474, 1379, 1710, 3334),
}
_VOWEL_NAMES = tuple(VOWELS)
_BANDWIDTHS = np.array([70.0, 100.0, 150.0, 250.0, 350.0])
_F5 = 4400.0


@dataclasses.dataclass(frozen=True)
class Consonant:
  kind: str                 # fric | stop | nasal | approx | h
  voiced: bool = False
  band: tuple[float, float] = (0.0, 0.0)    # noise band (Hz), fric/stop
  level_db: float = 0.0     # noise level re the vowel level
  dur: float = 0.08         # base duration (s) of the whole onset
  formants: tuple[float, ...] = ()          # nasal/approx targets (male)


CONSONANTS = {
    'p': Consonant('stop', False, (400, 3000), -14, 0.09),
    't': Consonant('stop', False, (3000, 7000), -10, 0.09),
    'k': Consonant('stop', False, (1500, 4000), -10, 0.10),
    'b': Consonant('stop', True, (400, 3000), -20, 0.07),
    'd': Consonant('stop', True, (3000, 6500), -16, 0.07),
    'g': Consonant('stop', True, (1500, 4000), -16, 0.07),
    's': Consonant('fric', False, (4000, 7600), -8, 0.10),
    'sh': Consonant('fric', False, (2200, 6500), -8, 0.10),
    'f': Consonant('fric', False, (1200, 7600), -20, 0.09),
    'z': Consonant('fric', True, (4000, 7600), -14, 0.08),
    'v': Consonant('fric', True, (1200, 7000), -22, 0.07),
    'h': Consonant('h', False, (0, 0), -12, 0.07),
    'm': Consonant('nasal', True, formants=(280, 1000, 2200, 3300), dur=0.07),
    'n': Consonant('nasal', True, formants=(280, 1500, 2500, 3400), dur=0.065),
    'l': Consonant('approx', True, formants=(360, 1050, 2600, 3400), dur=0.06),
    'r': Consonant('approx', True, formants=(400, 1150, 1600, 3200), dur=0.06),
    'w': Consonant('approx', True, formants=(320, 750, 2300, 3300), dur=0.055),
    'j': Consonant('approx', True, formants=(290, 2150, 2900, 3500), dur=0.055),
}
_CONS_NAMES = tuple(CONSONANTS)
_CONS_WEIGHTS = np.array([3, 5, 4, 3, 4, 2, 5, 2, 3, 2, 2, 2, 4, 6, 4, 4, 2, 1],
                         float)
_CONS_WEIGHTS /= _CONS_WEIGHTS.sum()
assert len(_CONS_WEIGHTS) == len(_CONS_NAMES)


@functools.lru_cache(maxsize=None)
def _bandpass(lo: float, hi: float):
  nyq = SAMPLE_RATE / 2
  return signal.butter(4, [lo / nyq, min(hi, 0.95 * nyq) / nyq], 'bandpass',
                       output='sos')


@functools.lru_cache(maxsize=None)
def _highpass(fc: float):
  return signal.butter(2, fc / (SAMPLE_RATE / 2), 'highpass', output='sos')


# ---------------------------------------------------------------------------
# Speakers.

@dataclasses.dataclass(frozen=True)
class Speaker:
  index: int            # 0-based
  name: str             # 'S01F'
  gender: str           # 'female' | 'male'
  session: str          # 'Ses01'
  f0: float             # neutral median f0 (Hz)
  vtl: float            # formant scale (1 = adult male reference)
  rate: float           # speaking-rate factor
  level_db: float       # active speech level of neutral speech (dBFS)
  tilt: float           # dB/octave above 500 Hz
  oq: float             # open quotient
  breath: float         # aspiration noise level
  jitter: float         # relative period perturbation (sd)
  shimmer: float        # relative amplitude perturbation (sd)
  noise_db: float       # recording noise floor (dBFS)
  expressiveness: float  # scales every emotion effect
  idio: np.ndarray = dataclasses.field(repr=False, compare=False)
  # idio: (num emotions, 4) speaker-specific offsets per emotion of
  # (pitch st, energy dB, rate factor, tilt dB/oct) around the emotion means.


def make_speakers(num_sessions: int, seed: int) -> list[Speaker]:
  """Two speakers per session: odd numbers female, even numbers male."""
  speakers = []
  for i in range(2 * num_sessions):
    rng = np.random.default_rng([seed, 1, i])
    female = i % 2 == 0
    gender = 'female' if female else 'male'
    idio = rng.normal(size=(len(EMOTIONS), 4)) * np.array([1.5, 2.0, 0.05, 0.7])
    idio[0] = 0.0  # neutral is the baseline by definition
    speakers.append(Speaker(
        index=i,
        name=f'S{i + 1:02d}{gender[0].upper()}',
        gender=gender,
        session=f'Ses{i // 2 + 1:02d}',
        f0=rng.uniform(180, 240) if female else rng.uniform(100, 130),
        vtl=rng.uniform(1.12, 1.22) if female else rng.uniform(0.94, 1.05),
        rate=rng.uniform(0.9, 1.1),
        level_db=rng.uniform(-32, -26),
        tilt=rng.uniform(-1.5, 1.0) - (0.5 if female else 0.0),
        oq=rng.uniform(0.55, 0.65) + (0.04 if female else 0.0),
        breath=rng.uniform(0.03, 0.08) + (0.02 if female else 0.0),
        jitter=rng.uniform(0.004, 0.009),
        shimmer=rng.uniform(0.02, 0.05),
        noise_db=rng.uniform(-66, -56),
        expressiveness=rng.uniform(0.65, 1.25),
        idio=idio,
    ))
  return speakers


# ---------------------------------------------------------------------------
# Emotions: means relative to the speaker's neutral baseline.

@dataclasses.dataclass(frozen=True)
class EmotionProfile:
  pitch: float          # f0 shift (semitones)
  range: float          # accent amplitude (semitones)
  rate: float           # speaking-rate factor
  energy: float         # loudness (dB)
  tilt: float           # extra spectral tilt (dB/octave, + brighter)
  oq: float             # open quotient (low = tense, high = breathy)
  breath: float         # aspiration-noise multiplier
  jitter: float         # jitter multiplier
  shimmer: float        # shimmer multiplier
  tremor: float         # 4-7 Hz f0 modulation depth (semitones)
  pause: float          # pause probability/length multiplier
  stress: float         # stressed-syllable energy contrast (dB)
  formant: float        # F1/F2 scale (jaw opening, smiling)
  contours: dict        # probabilities of the phrase contour shapes


def _p(pitch, range, rate, energy, tilt, oq, breath, jitter, shimmer, tremor,
       pause, stress, formant, contours):
  return EmotionProfile(pitch, range, rate, energy, tilt, oq, breath, jitter,
                        shimmer, tremor, pause, stress, formant, contours)


PROFILES = {
    #            pitch range rate  energy tilt  oq    breath jit  shim trem  pause stress fmt
    'neutral': _p(0.0, 2.5, 1.00, 0.0, 0.0, 0.60, 1.0, 1.0, 1.0, 0.00, 1.0, 2.0, 1.00,
                  dict(fall=.65, flat=.25, rise=.10)),
    'calm': _p(-0.6, 2.0, 0.92, -2.5, -1.2, 0.65, 1.5, 0.9, 0.9, 0.00, 1.3, 1.5, 0.98,
               dict(fall=.55, flat=.45)),
    'happy': _p(3.0, 5.5, 1.14, 4.0, 1.0, 0.55, 1.0, 1.2, 1.1, 0.00, 0.8, 3.5, 1.07,
                dict(hat=.50, fall=.30, rise=.20)),
    'sad': _p(-1.5, 1.2, 0.80, -4.5, -2.5, 0.70, 1.7, 1.5, 1.5, 0.10, 1.6, 1.0, 0.95,
              dict(fall=.55, flat=.45)),
    'angry': _p(3.5, 4.5, 1.12, 8.0, 3.5, 0.42, 0.5, 1.6, 1.3, 0.00, 0.7, 5.0, 1.08,
                dict(fall=.65, hat=.35)),
    'fearful': _p(5.0, 3.0, 1.15, -1.0, -0.5, 0.67, 2.0, 2.2, 1.7, 0.25, 1.1, 2.0, 1.00,
                  dict(rise=.35, flat=.35, hat=.30)),
    'disgust': _p(-1.5, 3.0, 0.82, 1.0, 0.5, 0.50, 1.0, 2.4, 2.2, 0.00, 1.4, 3.0, 0.97,
                  dict(fall=.75, flat=.25)),
    'surprised': _p(6.0, 7.0, 0.98, 4.5, 1.5, 0.55, 1.1, 1.2, 1.1, 0.00, 1.1, 4.0, 1.04,
                    dict(rise=.70, hat=.30)),
}
assert tuple(PROFILES) == EMOTIONS

# Within-class spread (standard deviations of the per-utterance draws).  The
# arousal latent a ~ N(0, 1) of each utterance moves pitch, energy, rate and tilt
# together; the rest is independent noise.  `variability` scales everything.
_AROUSAL_GAIN = dict(pitch=0.9, energy=1.2, rate=0.03, tilt=0.45)
_SPREAD = dict(pitch=1.6, energy=2.5, rate=0.07, tilt=0.8, oq=0.05,
               log_range=0.3, log_breath=0.35, log_jitter=0.3, stress=1.0)


@dataclasses.dataclass(frozen=True)
class Prosody:
  """One utterance's drawn parameters (absolute, speaker baseline applied)."""
  f0: float
  range_st: float
  contour: str
  rate: float
  level_db: float
  tilt: float
  oq: float
  breath: float
  jitter: float
  shimmer: float
  tremor: float
  tremor_hz: float
  pause: float
  stress: float
  formant: float


def draw_prosody(speaker: Speaker, emotion: int, rng: np.random.Generator,
                 variability: float = 1.0) -> Prosody:
  """Draws one utterance's prosody around the emotion's (relative) means."""
  p = PROFILES[EMOTIONS[emotion]]
  n = PROFILES['neutral']
  ex = speaker.expressiveness
  idio = speaker.idio[emotion]
  v = variability
  a = rng.normal() * v  # arousal deviation of this utterance

  def rel(mean, neutral_mean):  # emotion effect scaled by expressiveness
    return neutral_mean + ex * (mean - neutral_mean)

  pitch = rel(p.pitch, 0) + idio[0] + _AROUSAL_GAIN['pitch'] * a
  pitch += rng.normal() * _SPREAD['pitch'] * v
  energy = rel(p.energy, 0) + idio[1] + _AROUSAL_GAIN['energy'] * a
  energy += rng.normal() * _SPREAD['energy'] * v
  rate = rel(p.rate, 1.0) + idio[2] + _AROUSAL_GAIN['rate'] * a
  rate += rng.normal() * _SPREAD['rate'] * v
  tilt = rel(p.tilt, 0) + idio[3] + _AROUSAL_GAIN['tilt'] * a
  tilt += rng.normal() * _SPREAD['tilt'] * v
  oq = rel(p.oq, n.oq) + speaker.oq - n.oq + rng.normal() * _SPREAD['oq'] * v
  rng_st = rel(p.range, n.range) * np.exp(rng.normal() * _SPREAD['log_range'] * v)
  breath = speaker.breath * rel(p.breath, 1.0) * np.exp(
      rng.normal() * _SPREAD['log_breath'] * v)
  jit = np.exp(rng.normal() * _SPREAD['log_jitter'] * v)
  names = list(p.contours)
  contour = names[rng.choice(len(names), p=np.array(list(p.contours.values())))]
  return Prosody(
      f0=speaker.f0 * 2 ** (pitch / 12),
      range_st=float(max(rng_st, 0.3)),
      contour=contour,
      rate=float(np.clip(speaker.rate * rate, 0.55, 1.6)),
      level_db=speaker.level_db + energy,
      tilt=speaker.tilt + tilt,
      oq=float(np.clip(oq, 0.3, 0.85)),
      breath=float(max(breath, 0.0)),
      jitter=float(speaker.jitter * rel(p.jitter, 1.0) * jit),
      shimmer=float(speaker.shimmer * rel(p.shimmer, 1.0) * jit),
      tremor=float(rel(p.tremor, 0) * rng.uniform(0.5, 1.5)),
      tremor_hz=float(rng.uniform(4.0, 7.0)),
      pause=float(rel(p.pause, 1.0) * rng.uniform(0.8, 1.25)),
      stress=float(max(rel(p.stress, n.stress) + rng.normal() * _SPREAD['stress'] * v, 0.0)),
      formant=float(rel(p.formant, 1.0) * rng.uniform(0.98, 1.02)),
  )


# ---------------------------------------------------------------------------
# Text: a few fixed nonsense sentences (shared by every speaker and emotion, so
# that lexical content carries no emotion information).

def make_sentences(num: int, seed: int, syllables: int = 48) -> list[list[list]]:
  """Returns `num` sentences; sentence = words; word = [(onset, vowel, stressed)]."""
  sentences = []
  for s in range(num):
    rng = np.random.default_rng([seed, 2, s])
    words, count = [], 0
    while count < syllables:
      n = int(rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15]))
      stress = int(rng.integers(n)) if (n > 1 or rng.random() < 0.6) else -1
      word = []
      for k in range(n):
        onset = (None if rng.random() < 0.2 else
                 _CONS_NAMES[rng.choice(len(_CONS_NAMES), p=_CONS_WEIGHTS)])
        vowel = _VOWEL_NAMES[rng.integers(len(_VOWEL_NAMES))]
        word.append((onset, vowel, k == stress))
      words.append(word)
      count += n
    sentences.append(words)
  return sentences


# ---------------------------------------------------------------------------
# Synthesis.

def utterance_rng(seed: int, speaker: int, emotion: int, take: int):
  return np.random.default_rng([seed, 3, speaker, emotion, take])


def _trapezoid(arr, start, end, amp, ramp):
  """Adds a raised-cosine-edged plateau [start, end) (samples) to arr."""
  n = len(arr)
  start, end = int(max(start, 0)), int(min(end, n))
  if end <= start:
    return
  ramp = int(max(1, min(ramp, (end - start) // 2)))
  env = np.full(end - start, amp, dtype=np.float64)
  edge = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)
  env[:ramp] *= edge
  env[-ramp:] *= edge[::-1]
  arr[start:end] += env


def _plan(sentence, duration, pros: Prosody, rng):
  """Lays syllables out in time. Returns a list of segment dicts and speech span."""
  lead = rng.uniform(0.08, 0.3)
  tail = rng.uniform(0.1, 0.3)
  end = duration - tail
  t = lead
  segs = []
  words = [w for w in sentence]
  next_break = int(rng.integers(3, 7))
  for wi, word in enumerate(words):
    stop = False
    for si, (onset, vowel, stressed) in enumerate(word):
      cons = CONSONANTS[onset] if onset else None
      c_dur = cons.dur * rng.uniform(0.8, 1.25) / pros.rate if cons else 0.0
      v_dur = 0.115 * rng.uniform(0.8, 1.25) / pros.rate
      if stressed:
        v_dur *= 1.4
      if si == len(word) - 1:
        v_dur *= 1.2
      if t + c_dur + v_dur > end:
        stop = True
        break
      segs.append(dict(t=t, cons=cons, c_dur=c_dur, vowel=vowel, v0=t + c_dur,
                       v_dur=v_dur, stressed=stressed, word=wi))
      t += c_dur + v_dur
    if stop:
      break
    # Pauses between words and phrases.
    if wi + 1 == next_break:
      t += rng.uniform(0.15, 0.4) * pros.pause
      next_break += int(rng.integers(3, 7))
    elif rng.random() < 0.25 * pros.pause:
      t += rng.uniform(0.04, 0.15) * pros.pause
  if not segs:  # extremely short clip: one vowel filling the span
    segs.append(dict(t=lead, cons=None, c_dur=0.0, vowel='a', v0=lead,
                     v_dur=max(end - lead, 0.05), stressed=True, word=0))
  speech_end = segs[-1]['v0'] + segs[-1]['v_dur']
  return segs, lead, speech_end


def _glottal_source(f0, amp, pros: Prosody, rng):
  """Rosenberg glottal-flow derivative with jitter/shimmer (+ aspiration)."""
  n = len(f0)
  phase = np.cumsum(f0) / SAMPLE_RATE
  k = np.arange(1, int(phase[-1]))
  if len(k) < 2:
    return np.zeros(n), np.zeros(n)
  starts = np.interp(k, phase, np.arange(n, dtype=np.float64))
  periods = np.diff(starts, append=starts[-1] + SAMPLE_RATE / f0[-1])
  periods = periods * (1 + pros.jitter * np.clip(rng.normal(size=len(k)), -3, 3))
  starts = starts[0] + np.concatenate([[0.0], np.cumsum(periods[:-1])])
  gain = 1 + pros.shimmer * np.clip(rng.normal(size=len(k)), -3, 3)
  idx = np.searchsorted(starts, np.arange(n), side='right') - 1
  valid = idx >= 0
  idx = np.maximum(idx, 0)
  ph = (np.arange(n) - starts[idx]) / periods[idx]
  valid &= ph < 1.0
  oq = pros.oq
  tp, tn = 0.65 * oq, 0.35 * oq
  d = np.zeros(n)
  m1 = valid & (ph < tp)
  m2 = valid & (ph >= tp) & (ph < oq)
  d[m1] = (np.pi / (2 * tp)) * np.sin(np.pi * ph[m1] / tp)
  d[m2] = -(np.pi / (2 * tn)) * np.sin(np.pi * (ph[m2] - tp) / (2 * tn))
  # dg/dt = dg/dphase * f0: same flow amplitude, sharper pulses at higher f0.
  d *= gain[idx] * (f0 / 150.0)
  open_phase = (valid & (ph < oq)).astype(np.float64)
  src = d * amp
  # Pitch-synchronous aspiration noise (breathiness), high-passed.
  noise = signal.sosfilt(_highpass(800.0), rng.normal(size=n))
  asp = noise * (0.35 + 0.65 * open_phase) * amp * pros.breath * 4.0
  return src, asp


def _active_level(y, frame=320, floor_db=-35.0):
  """RMS over the 20 ms frames within `floor_db` of the loudest one."""
  nf = len(y) // frame
  if nf == 0:
    return float(np.sqrt(np.mean(y ** 2)) + 1e-9)
  pw = np.mean(y[:nf * frame].reshape(nf, frame) ** 2, axis=1)
  active = pw[pw >= pw.max() * 10 ** (floor_db / 10)]
  return float(np.sqrt(np.mean(active)) + 1e-9)


def _formant_response(formants, bandwidths, nfft=_NFFT):
  """Complex response (frames, bins) of cascaded unity-DC-gain resonators."""
  w = np.linspace(0, np.pi, nfft // 2 + 1)
  z1 = np.exp(-1j * w)[None, :]
  h = np.ones((formants.shape[0], len(w)), complex)
  for i in range(formants.shape[1]):
    r = np.exp(-np.pi * bandwidths[:, i:i + 1] / SAMPLE_RATE)
    c = 2 * r * np.cos(2 * np.pi * formants[:, i:i + 1] / SAMPLE_RATE)
    den = 1 - c * z1 + (r * r) * z1 * z1
    h *= (1 - c + r * r) / den
  return h


def synthesize(speaker: Speaker, emotion: int, take: int, *, seed: int,
               sentences, min_duration: float, max_duration: float,
               variability: float = 1.0) -> np.ndarray:
  """One utterance as float32 in [-1, 1] at 16 kHz."""
  rng = utterance_rng(seed, speaker.index, emotion, take)
  pros = draw_prosody(speaker, emotion, rng, variability)
  duration = rng.uniform(min_duration, max_duration)
  n = int(round(duration * SAMPLE_RATE))
  sentence = sentences[take % len(sentences)]
  segs, s0, s1 = _plan(sentence, duration, pros, rng)

  sr = SAMPLE_RATE
  amp = np.zeros(n)        # voicing amplitude
  unv = np.zeros(n)        # unvoiced source noise amplitude (h, aspiration)
  post = np.zeros(n)       # noise added after the vocal tract (frication, bursts)
  targets_t, targets_f = [], []
  vscale = speaker.vtl
  n_seg = len(segs)
  for j, sg in enumerate(segs):
    u = (sg['v0'] - s0) / max(s1 - s0, 1e-3)
    gain_db = (pros.stress if sg['stressed'] else 0.0) - 3.0 * u
    gain_db += rng.normal() * 1.0
    g = 10 ** (gain_db / 20)
    v0, vd = sg['v0'] * sr, sg['v_dur'] * sr
    f = np.array(VOWELS[sg['vowel']], float)
    f[:2] *= pros.formant
    f *= vscale
    targets_t += [sg['v0'] + 0.3 * sg['v_dur'], sg['v0'] + 0.7 * sg['v_dur']]
    targets_f += [f, f]
    cons = sg['cons']
    c0, cd = sg['t'] * sr, sg['c_dur'] * sr
    # Vowel: voiced, ramps depend on the onset (abrupt after stops).
    ramp = 0.012 * sr if (cons and cons.kind == 'stop') else 0.025 * sr
    tail_ramp = 0.03 * sr if (j + 1 == n_seg or segs[j + 1]['word'] != sg['word']) else 0.012 * sr
    _trapezoid(amp, v0 - 0.005 * sr, v0 + vd, g, min(ramp, tail_ramp))
    if cons is None:
      continue
    if cons.kind in ('nasal', 'approx'):
      lvl = 0.35 if cons.kind == 'nasal' else 0.6
      _trapezoid(amp, c0, v0 + 0.01 * sr, g * lvl, 0.01 * sr)
      cf = np.array(cons.formants, float) * vscale
      targets_t.append(sg['t'] + 0.5 * sg['c_dur'])
      targets_f.append(cf)
    elif cons.kind == 'fric':
      nz = signal.sosfilt(_bandpass(*cons.band), rng.normal(size=int(cd) + 1))
      env = np.zeros(int(cd) + 1)
      _trapezoid(env, 0, len(env), 1.0, 0.02 * sr)
      seg = nz * env * g * 10 ** (cons.level_db / 20) * 3.0
      a, b = int(c0), int(c0) + len(seg)
      post[a:min(b, n)] += seg[:max(0, min(b, n) - a)]
      if cons.voiced:
        _trapezoid(amp, c0, v0 + 0.01 * sr, g * 0.3, 0.01 * sr)
    elif cons.kind == 'h':
      _trapezoid(unv, c0, v0 + 0.01 * sr, g * 10 ** (cons.level_db / 20) * 3,
                 0.015 * sr)
    elif cons.kind == 'stop':
      burst_len = int(rng.uniform(0.008, 0.018) * sr)
      asp_len = 0.0 if cons.voiced else rng.uniform(0.015, 0.04) * sr / pros.rate
      b0 = v0 - burst_len - asp_len
      nz = signal.sosfilt(_bandpass(*cons.band), rng.normal(size=burst_len))
      nz *= np.exp(-np.arange(burst_len) / (0.4 * burst_len))
      a = int(max(b0, 0))
      seg = nz[:max(0, min(a + burst_len, n) - a)]
      post[a:a + len(seg)] += seg * g * 10 ** (cons.level_db / 20) * 4.0
      if asp_len > 0:
        _trapezoid(unv, b0 + burst_len, v0 + 0.005 * sr,
                   g * 10 ** (-14 / 20) * 3, 0.005 * sr)
      if cons.voiced:  # voice bar during the closure
        _trapezoid(amp, c0, b0, g * 0.08, 0.005 * sr)
  # Formant tracks at STFT frame centres.
  order = np.argsort(targets_t)
  tt = np.asarray(targets_t)[order]
  ff = np.asarray(targets_f)[order]
  n_frames = n // _HOP + 1
  t_frames = np.arange(n_frames) * _HOP / sr
  formants = np.stack([np.interp(t_frames, tt, ff[:, i]) for i in range(4)]
                      + [np.full(n_frames, _F5 * min(vscale, 1.1))], axis=1)
  formants = np.minimum(formants, 0.45 * sr)
  bw = np.broadcast_to(_BANDWIDTHS * vscale, formants.shape).copy()
  bw[:, 0] *= 1 + 1.5 * max(pros.oq - 0.6, 0.0)  # glottal losses when breathy

  # f0 contour (semitones re the utterance's mean f0), control rate 200 Hz.
  ctl = np.arange(0, duration + 0.005, 0.005)
  u = np.clip((ctl - s0) / max(s1 - s0, 1e-3), 0, 1)
  decl = rng.uniform(1.0, 3.0)
  r = pros.range_st
  if pros.contour == 'fall':
    st = decl * (0.5 - u) + 0.8 * r * (0.5 - u)
  elif pros.contour == 'rise':
    st = decl * 0.5 * (0.5 - u) + 1.4 * r * np.clip((u - 0.7) / 0.3, 0, 1) ** 2
  elif pros.contour == 'hat':
    st = decl * (0.5 - u) + 0.8 * r * np.sin(np.pi * u) ** 2
  else:  # flat
    st = 0.4 * decl * (0.5 - u)
  for sg in segs:
    if sg['stressed'] and rng.random() < 0.8:
      centre = sg['v0'] + sg['v_dur'] * rng.uniform(0.2, 0.6)
      width = max(sg['v_dur'] * 0.7, 0.04)
      height = r * rng.uniform(0.4, 1.0) * (1 if rng.random() > 0.15 else -0.6)
      st = st + height * np.exp(-0.5 * ((ctl - centre) / width) ** 2)
  # Slow random drift and tremor.
  drift = np.cumsum(rng.normal(size=len(ctl))) * 0.04
  st = st + drift - drift.mean()
  st = st + pros.tremor * np.sin(2 * np.pi * pros.tremor_hz * ctl + rng.uniform(0, 6.3))
  st = st - np.median(st[(ctl > s0) & (ctl < s1)]) if np.any((ctl > s0) & (ctl < s1)) else st
  f0 = pros.f0 * 2 ** (np.interp(np.arange(n) / sr, ctl, st) / 12)
  f0 = np.clip(f0, 55.0, 650.0)

  src, asp = _glottal_source(f0, amp, pros, rng)
  src = src + asp + unv * rng.normal(size=n)
  # Time-varying vocal-tract filter and tilt in the STFT domain.
  _, _, z = signal.stft(src, nperseg=_NFFT, noverlap=_NFFT - _HOP,
                        window='hann')
  m = min(z.shape[1], n_frames)
  h = _formant_response(formants[:m], bw[:m])
  freqs = np.linspace(0, sr / 2, _NFFT // 2 + 1)
  tilt_db = pros.tilt * np.log2(np.maximum(freqs, 500.0) / 500.0)
  z[:, :m] *= (h * 10 ** (tilt_db / 20)[None, :]).T
  z[:, m:] = 0
  _, y = signal.istft(z, nperseg=_NFFT, noverlap=_NFFT - _HOP, window='hann')
  y = y[:n]
  if len(y) < n:
    y = np.pad(y, (0, n - len(y)))
  y = y + post * _active_level(y)
  y = signal.sosfilt(_highpass(60.0), y)

  # Recording: active speech level, noise floor, soft limiting.
  y *= 10 ** (pros.level_db / 20) / _active_level(y)
  floor = signal.lfilter([1.0], [1.0, -0.9], rng.normal(size=n))
  floor *= 10 ** (speaker.noise_db / 20) / np.std(floor)
  y = y + floor
  knee = 0.8
  over = np.abs(y) > knee
  y[over] = np.sign(y[over]) * (knee + (1 - knee) * np.tanh((np.abs(y[over]) - knee) / (1 - knee)))
  return y.astype(np.float32)
