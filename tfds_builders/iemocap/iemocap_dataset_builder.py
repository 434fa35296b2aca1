"""`iemocap`: the IEMOCAP corpus (USC SAIL), every labelled turn.

    tfds build tfds_builders/iemocap --manual_dir=~/corpora/IEMOCAP_full_release
"""
from __future__ import annotations

import logging
import math
import pathlib
import sys

import numpy as np
import tensorflow_datasets as tfds

try:
  from tfds_builders import common
except ImportError:  # `tfds build tfds_builders/iemocap` run by the `tfds`
  # console script, whose sys.path lacks the repository root.
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
  from tfds_builders import common
from tfds_builders.iemocap import labels
from tfds_builders.iemocap import subsets

assert set(labels.EMOTION_OF.values()) <= set(common.EMOTION_NAMES)

_CORPUS = 'iemocap'
# DatasetInfo.metadata keys (metadata.json next to the dataset):
BUILD_KEY = getattr(common, 'BUILD_METADATA_KEY', 'build')  # skips and notes
LABEL_COUNTS_KEY = 'label_file_counts'   # subsets.subset_counts of the label files
SUBSET_COUNTS_KEY = 'subset_counts'      # the same over the examples written

_DESCRIPTION = """\
IEMOCAP (Interactive Emotional Dyadic Motion Capture, Busso et al. 2008): five
sessions of dyadic improvised and scripted dialogs, one female and one male
actor per session, segmented into turns and labelled by annotators. Every
labelled turn of `SessionN/dialog/EmoEvaluation/DIALOG.txt` (10,039 in the full
release) is one example, whatever its label, with its audio
`SessionN/sentences/wav/DIALOG/UTTERANCE.wav` as 16 kHz mono int16.

Features: `label` is the raw label (neu hap exc ang sad fru sur fea dis oth
xxx); `emotion` the unified emotion (neu->neutral, hap and exc->happy,
sad, ang->angry, fea->fearful, dis->disgust, sur->surprised, fru/oth/xxx->other);
`speaker` = session + the first letter of the last `_` token of the turn id
(`Ses01F_impro01_M003` -> `Ses01M`, male); `session` (`Ses01`), `dialog`,
`improvised` (dialog name has `impro`, else `script`), `utterance` (turn id),
`start_time`/`end_time` in the dialog (s), `valence`/`activation`/`dominance`
(annotators' mean, 1-5), `path` relative to `IEMOCAP_full_release/`,
`duration` (s).

Subsets (selected by the input pipeline, never at build time): 4 classes with
exc merged into hap = label in {{neu, hap, exc, ang, sad}} (5,531 turns;
equivalently emotion in {{neutral, happy, sad, angry}}); without the merge =
label in {{neu, hap, ang, sad}}; either restricted to `improvised`. Their counts
are in the dataset's metadata (`subset_counts`). One split, `{split}`, holds
every turn: sessions and speakers come from the metadata.
""".format(split=common.ALL_SPLIT)

_MANUAL_DOWNLOAD_INSTRUCTIONS = """\
IEMOCAP is distributed by USC SAIL after a signed release form:
https://sail.usc.edu/iemocap/ . Extract `IEMOCAP_full_release.tar.gz` and pass
`--manual_dir` = the extracted `IEMOCAP_full_release/` folder (or the folder
that holds it). Expected inside: `Session1/` ... `Session5/`, each with
`dialog/EmoEvaluation/*.txt` and `sentences/wav/<dialog>/<turn>.wav`. Video,
motion capture and transcripts are not needed.
"""


def _corpus_fields():
  f32 = lambda: tfds.features.Scalar(dtype=np.float32)  # noqa: E731
  return dict(
      utterance=tfds.features.Text(),
      dialog=tfds.features.Text(),
      improvised=tfds.features.Scalar(dtype=np.bool_),
      start_time=f32(), end_time=f32(),
      valence=f32(), activation=f32(), dominance=f32(),
  )


class Builder(common.ManualCorpusMixin, tfds.core.GeneratorBasedBuilder):
  """IEMOCAP: every labelled turn, raw and unified labels, 16 kHz mono."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  # Recorded at 16 kHz: no 22k build (it would add no content), so no config.
  BUILDER_CONFIGS = []
  DEFAULT_CONFIG_NAME = None
  MANUAL_DIR_HINT = '~/corpora/IEMOCAP_full_release'   # what --manual_dir points at, in messages
  MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL_DOWNLOAD_INSTRUCTIONS

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=_DESCRIPTION,
        features=common.base_features(**_corpus_fields()),
        supervised_keys=('audio', 'emotion'),
        homepage='https://sail.usc.edu/iemocap/',
        citation=r"""@article{busso2008iemocap,
  title={IEMOCAP: Interactive emotional dyadic motion capture database},
  author={Busso, Carlos and Bulut, Murtaza and Lee, Chi-Chun and Kazemzadeh, Abe
          and Mower, Emily and Kim, Samuel and Chang, Jeannette N and Lee, Sungbok
          and Narayanan, Shrikanth S},
  journal={Language Resources and Evaluation}, volume={42}, number={4},
  pages={335--359}, year={2008}}""",
        metadata=tfds.core.MetadataDict(),
    )

  def _corpus_root(self, dl_manager) -> pathlib.Path:
    """The `IEMOCAP_full_release/` folder, or an error naming what was expected."""
    try:
      manual_dir = dl_manager.manual_dir
    except AssertionError as e:   # missing or empty manual_dir
      given = getattr(dl_manager, '_manual_dir', None)
      raise common.ManualDirError(
          f'{_CORPUS}: --manual_dir {given} does not exist or is empty. Expected '
          f'{labels.EXPECTED}.\n{_MANUAL_DOWNLOAD_INSTRUCTIONS}') from e
    common.check_manual_dir(manual_dir, _CORPUS, labels.EXPECTED,
                            lambda p: labels.find_corpus_root(p) is not None)
    return labels.find_corpus_root(manual_dir)

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = self._corpus_root(dl_manager)
    corpus = labels.scan_corpus(root)
    if not corpus.turns:
      raise FileNotFoundError(
          f'{_CORPUS}: no label lines in {root}/Session*/dialog/EmoEvaluation/*.txt. '
          f'Expected {labels.EXPECTED}.')
    counts = subsets.subset_counts(corpus.turns)
    logging.info('%s', subsets.format_counts(counts, 'IEMOCAP label files'))
    missing = {f'Session{i}' for i in range(1, 6)} - set(corpus.sessions)
    if missing:
      logging.warning('%s: %s has no %s: building a partial corpus.',
                      _CORPUS, root, ', '.join(sorted(missing)))
    if subsets.is_full_corpus(counts):
      subsets.assert_published(counts, 'label files')   # fails before decoding
    self.info.metadata[LABEL_COUNTS_KEY] = counts
    return {common.ALL_SPLIT: self._generate_examples(corpus)}

  def _generate_examples(self, corpus: labels.Corpus):
    log = common.SkipLog(_CORPUS)
    for p in corpus.problems:
      log.skip(f'{p.source}:{p.line}', f'{p.reason}: {p.text!r}')
    for t in corpus.duplicates:
      log.skip(f'{t.source}:{t.line}', f'duplicate label line: {t.utterance}')
    for w in corpus.unlabelled_wavs:
      log.skip(corpus.rel(w), 'wav without label line')
    ignored = getattr(log, 'ignored', None)   # counted in the summary if SkipLog can
    for source in corpus.non_dialog_files:
      logging.info('%s: ignoring %s: no label lines (not a dialog label file)',
                   _CORPUS, source)
      if ignored is not None:
        ignored['.txt without label lines'] += 1
    if corpus.ignored_hidden:
      logging.info('%s: ignoring %d hidden or macOS `._*` files', _CORPUS,
                   corpus.ignored_hidden)
      if ignored is not None:
        ignored['._* (macOS) or hidden'] += corpus.ignored_hidden

    def decode(turn: labels.Turn):
      wav = corpus.wav_of(turn)
      if wav is None:
        return turn, None, None, (
            f'missing wav: no {turn.dialog}/{turn.utterance}.wav under '
            f'Session{int(turn.session[3:])}/sentences/wav')
      try:
        audio, info = common.read_audio(wav)
      except common.UnusableAudio as e:
        return turn, wav, None, str(e)
      except Exception as e:  # pylint: disable=broad-except  never crash half-way
        return turn, wav, None, f'error while decoding: {type(e).__name__}: {e}'
      return turn, wav, (audio, info), None

    written = []
    for turn, wav, decoded, error in common.map_threaded(decode, corpus.turns):
      where = corpus.rel(wav) if wav is not None else f'{turn.source}:{turn.line}'
      if error:
        log.skip(where, error)
        continue
      audio, info = decoded
      if info['silent']:
        log.note(where, 'all zeros (silent; kept: it is a corpus entry)')
      if info['channels'] > 1:
        log.note(where, f"{info['channels']}-channel (down-mixed to mono)")
      if info['format'] not in ('WAV', 'WAVEX', 'RF64', 'W64'):
        log.note(where, f"{info['format']} data, not RIFF WAVE (read by content)")
      if info['sample_rate'] != common.SAMPLE_RATE:
        log.note(where, f"at {info['sample_rate']} Hz, not the corpus's "
                        f'{common.SAMPLE_RATE} Hz (resampled)')
      if math.isnan(turn.valence):
        log.note(f'{turn.source}:{turn.line}', 'without [V, A, D] values (stored as NaN)')
      if turn.label not in labels.LABELS:
        log.note(f'{turn.source}:{turn.line}', f'labelled {turn.label!r} (emotion other)')
      written.append(turn)
      yield turn.utterance, {
          'audio': audio,
          'emotion': turn.emotion,
          'label': turn.label,
          'speaker': turn.speaker,
          'gender': turn.gender,
          'session': turn.session,
          'path': corpus.rel(wav),
          'duration': np.float32(len(audio) / common.SAMPLE_RATE),
          'utterance': turn.utterance,
          'dialog': turn.dialog,
          'improvised': turn.improvised,
          'start_time': np.float32(turn.start),
          'end_time': np.float32(turn.end),
          'valence': np.float32(turn.valence),
          'activation': np.float32(turn.activation),
          'dominance': np.float32(turn.dominance),
      }

    counts = subsets.subset_counts(written)
    report = [subsets.format_counts(counts, 'IEMOCAP examples written')]
    label_counts = self.info.metadata.get(LABEL_COUNTS_KEY)
    if label_counts and subsets.is_full_corpus(label_counts):
      diffs = subsets.published_mismatches(counts)
      if diffs:   # the label files matched (checked before), so turns were unusable
        report.append('WARNING: because of the skipped turns the dataset differs from '
                      'the published counts: ' + '; '.join(diffs))
      else:
        report.append('four_class matches the published counts (5,531 turns).')
    build = (log.as_metadata(len(written)) if hasattr(log, 'as_metadata') else
             {'examples': len(written), 'skipped': dict(log.reasons),
              'notes': dict(log.notes), 'summary': log.summary(len(written))})
    build['summary'] += '\n' + '\n'.join(report)
    self.info.metadata[BUILD_KEY] = build
    self.info.metadata[SUBSET_COUNTS_KEY] = counts
    logging.info('%s', build['summary'])
    if not written:
      raise RuntimeError(f'{_CORPUS}: no usable labelled turn.\n{build["summary"]}')
