"""The type models: intake, gate, scoring, kinds, serving, registry, training.

OpenMP threads that wait for work by spinning (libgomp's default) take a busy machine's cores from
every other process and from each other: on this project's 2-core machine, with other work running,
one training step of the head took 1.1–1.7 s with torch's two threads spinning and 77–85 ms with
them sleeping while they wait (``python -m bench.models``). torch's OpenMP reads the policy once, when
torch is first imported, so it is set here, before any module of this package imports torch. A value
set in the environment wins.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
