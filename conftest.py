"""Test set-up: the repo root on sys.path, quiet TensorFlow, small thread pools."""
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
