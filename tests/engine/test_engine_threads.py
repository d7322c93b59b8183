"""Thread pool lifetime: workers are created once per session, never per token."""
import os
import threading

import numpy as np
import pytest

import liquidlfm as lfm
from tests.fixtures.hf_models import make_hf_model

pytestmark = pytest.mark.reference  # models are built with transformers


def n_os_threads():
    return len(os.listdir("/proc/self/task"))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    p = make_hf_model(tmp_path_factory.mktemp("m"), vocab_size=128, hidden_size=64, num_hidden_layers=2,
                      layer_types=["conv", "full_attention"], intermediate_size=96, tokenizer=False)
    with lfm.load(p) as m:
        yield m


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
def test_workers_created_once_per_session(model):
    base = n_os_threads()
    s = model.session(n_ctx=64, n_threads=3)
    assert n_os_threads() == base + 2  # the caller is the third thread
    s.prefill([1, 2, 3])
    for t in range(20):
        s.step(t)
        assert n_os_threads() == base + 2
    s.close()
    assert n_os_threads() == base


def test_sessions_in_parallel_python_threads(model):
    """Two sessions decoding from two Python threads (GIL released) give the single-thread result."""
    ids = [int(x) for x in np.random.RandomState(0).randint(0, 128, 40)]
    with model.session(n_ctx=64, n_threads=1) as s:
        want = np.stack([s.step(t) for t in ids])
    # one-token steps sum attention in llama.cpp's one-token order: the batch forward agrees to rounding
    np.testing.assert_allclose(want, model.forward(ids), rtol=0, atol=1e-5)
    results = {}

    def run(k):
        with model.session(n_ctx=64, n_threads=1) as s:
            results[k] = np.stack([s.step(t) for t in ids])

    th = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    for k in range(2):
        np.testing.assert_array_equal(results[k], want)


AFFINITY_PROBE = """
import sys, liquidlfm as lfm
from liquidlfm import _core
m = lfm.load(sys.argv[1])
s = m.session(n_ctx=8)
print(_core.cpu_features()["usable_cores"], s.n_threads)
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux CPU affinity")
def test_default_threads_follow_cpu_affinity(model):
    """Under `taskset -c 0` the engine starts one thread, not one per online CPU (a second thread
    on the same core made decode 26% slower)."""
    import subprocess
    import sys

    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("this process may use one CPU only: nothing to restrict")
    cpu = min(os.sched_getaffinity(0))
    out = subprocess.run([sys.executable, "-c", AFFINITY_PROBE, str(model.path)], capture_output=True, text=True,
                         check=True, preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert out.stdout.split() == ["1", "1"], out.stdout
    full = subprocess.run([sys.executable, "-c", AFFINITY_PROBE, str(model.path)], capture_output=True, text=True,
                          check=True, cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    n = len(os.sched_getaffinity(0))
    assert full.stdout.split() == [str(n), str(n)], full.stdout
