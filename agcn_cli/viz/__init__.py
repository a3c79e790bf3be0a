"""Pictures of the data and the runs: skeleton animations and strips (`render.py`), training
curves and per-class accuracy bars (`curves.py`), the matplotlib plumbing they share
(`figure.py`). matplotlib is an optional extra (`pip install 'agcn[viz]'`), imported inside the
functions; figures are drawn off-screen (Agg), never through pyplot's global state."""
