"""benchmarks/train_step.py runs and reports what the README quotes (tiny sizes)."""
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_train_step_benchmark_reports_speed_and_profile(tmp_path):
  out = subprocess.run(
      [sys.executable, 'benchmarks/train_step.py', '--model=cnn2d_bilstm,selfattn_gender',
       '--config_arg=tiny', '--steps=2', '--inputs=features', f'--profile={tmp_path}',
       '--peak_tflops=1.0'],
      cwd=REPO, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  lines = [json.loads(l) for l in out.stdout.splitlines() if l.startswith('{')]
  assert [r['model'] for r in lines] == ['cnn2d_bilstm', 'selfattn_gender']
  for r in lines:
    assert r['inputs'] == 'features' and r['loss_finite']
    assert r['examples_per_s'] > 0 and r['params'] > 0 and r['compile_s'] > 0
    assert r['xla_gflop_per_step'] and 0 < r['peak_fraction']
    assert r['top_ops_ms_per_step'] and all(v >= 0 for v in r['top_ops_ms_per_step'].values())
    assert os.path.isdir(tmp_path / r['model'])
    assert r['page_faults_per_step'] >= 0
    assert r['cpu'] and r['cores'] >= 1 and isinstance(r['cpu_bf16_flags'], list)
    assert 'xla_flags' in r
  # The benchmark restarts itself with the huge-page tunable where it helps.
  from ser_jax import xla_setup
  env_missing = xla_setup.malloc_tunable_missing(
      {k: v for k, v in os.environ.items() if k != 'GLIBC_TUNABLES'})
  if env_missing and 'GLIBC_TUNABLES' not in os.environ:
    assert all(r['glibc_tunables'] == xla_setup.MALLOC_TUNABLE for r in lines)


def test_svm_features_benchmark_reports_cold_warm_and_reference(tmp_path):
  out = subprocess.run(
      [sys.executable, 'benchmarks/svm_features.py', '--config=configs/svm_features.py:tiny',
       f'--data_dir={tmp_path / "tfds"}', '--limit=6', '--num_workers=1', '--reference=2'],
      cwd=REPO, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  r = json.loads(out.stdout.strip().splitlines()[-1])
  assert r['files'] == 6 and r['cold_files_per_s'] > 0 and r['warm_s'] < r['cold_s']
  assert r['reference_files'] == 2 and r['max_rel_diff_vs_librosa'] < 1e-5
  assert r['ms_per_file_fast_1core'] > 0 and r['cores'] >= 1


def test_predict_benchmark_reports_files_per_second_and_agreement():
  out = subprocess.run(
      [sys.executable, 'benchmarks/predict.py', '--model=selfattn_gender', '--config_arg=tiny',
       '--files=12', '--compare=4'],
      cwd=REPO, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  r = json.loads(out.stdout.strip().splitlines()[-1])
  assert r['files'] == 12 and r['errors'] == 0 and r['files_per_s'] > 0
  assert 0 < r['first_result_s'] <= r['total_s'] and r['segments'] >= 12
  assert r['compared_files'] == 4 and r['max_abs_diff_vs_one_at_a_time'] < 1e-5


def test_xla_cpu_paths_benchmark_times_each_path_in_its_own_process():
  out = subprocess.run(
      [sys.executable, 'benchmarks/xla_cpu_paths.py', '--paths=eigen,ynn_dot', '--n=64',
       '--conv=2,8,8,4,8', '--reps=1'],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  head, *rows = [json.loads(l) for l in out.stdout.splitlines() if l.startswith('{')]
  assert head['cores'] >= 1 and isinstance(head['cpu_bf16_flags'], list)
  assert [r['path'] for r in rows] == ['eigen', 'ynn_dot']
  assert rows[0]['xla_flags'] == '' and 'ynn' in rows[1]['xla_flags']
  for r in rows:
    for op in ('dot', 'conv'):
      assert r[f'{op}_float32_gflop_s'] > 0 and r[f'{op}_bfloat16_gflop_s'] > 0
      assert 0 <= r[f'{op}_bf16_rel_err'] < 0.05     # bf16 inputs, f32 accumulation
  assert '| eigen |' in out.stderr
  bad = subprocess.run([sys.executable, 'benchmarks/xla_cpu_paths.py', '--paths=mkl'],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
  assert bad.returncode == 2 and 'unknown path' in bad.stderr


def test_keras_peer_builds_the_same_network_and_reports_speed():
  out = subprocess.run(
      [sys.executable, 'benchmarks/peer_keras.py', '--steps=1', '--warmup=0', '--batch_size=4'],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  r = json.loads(out.stdout.strip().splitlines()[-1])
  assert r['params'] == 709_128          # ser_jax's cnn2d_bilstm at 130×40, 8 classes
  assert r['examples_per_s'] > 0 and r['loss_finite'] and r['peer'].startswith('keras')
