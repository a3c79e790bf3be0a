import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the benchmarks/ reference transcriptions
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/skeleton_writer.py
