import os

# One BLAS thread unless the environment says otherwise (set before numpy loads). The
# products here are small (batch x 784 x 256 at most): a second OpenBLAS thread gains
# little on an idle machine, and on a busy one its threads wait for each other (training
# the default MLP ran ~10x slower with two threads than with one on a loaded 2-core
# machine). It also makes a seeded run's results independent of the core count.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from .cli import main  # noqa: E402

main()
