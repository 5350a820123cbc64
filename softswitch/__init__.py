"""A pure-Python SIP/RTP softswitch with an embedded call-centre ACD."""
import os as _os

# The media tick multiplies small matrices every 20 ms (DTMF detection): a multi-threaded BLAS only
# adds thread hand-offs and, measured under load, burnt a second core spinning (bench/MEDIA.md).
# numpy reads these when it loads, so they are set as the package is first imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    _os.environ.setdefault(_var, "1")
