"""The session factory really puts sessions on QNN HTP, and refuses a silent CPU fallback."""

import numpy as np
import pytest

from studio.core.engine.sessions import make_session, random_inputs
from studio.core.errors import BadInputError


def test_cpu_session_runs(tiny_model):
    sess, info = make_session(tiny_model, "cpu")
    feeds = random_inputs(sess)
    (y,) = sess.run(None, feeds)
    assert y.shape == (1, 8, 16, 16)
    assert info.providers == ["CPUExecutionProvider"]


def test_unknown_backend_is_bad_input(tiny_model):
    with pytest.raises(BadInputError, match="unknown backend"):
        make_session(tiny_model, "tpu")


@pytest.mark.htp
def test_float_model_on_htp_fp16_fully_offloaded(tiny_model):
    sess, info = make_session(
        tiny_model,
        "htp",
        provider_options={"enable_htp_fp16_precision": "1", "soc_model": "60"},
        disable_cpu_fallback=True,
    )
    assert info.providers[0] == "QNNExecutionProvider"
    feeds = random_inputs(sess)
    ref_sess, _ = make_session(tiny_model, "cpu")
    (y,) = sess.run(None, feeds)
    (ref,) = ref_sess.run(None, feeds)
    assert np.abs(y - ref).max() < 0.05 * np.abs(ref).max()


@pytest.mark.htp
def test_qnn_backend_that_runs_no_node_is_visible_and_refused_without_fallback(tiny_model):
    """QNN GPU fails to initialise without an Adreno, yet ORT keeps the EP listed and runs on CPU."""
    from studio.core.errors import BackendUnavailableError

    _, gpu = make_session(tiny_model, "gpu")
    assert gpu.qnn_nodes == 0  # listed as a provider, ran nothing
    with pytest.raises(BackendUnavailableError):
        make_session(tiny_model, "gpu", disable_cpu_fallback=True)
    _, htp = make_session(tiny_model, "htp")
    assert htp.qnn_nodes >= 2  # Conv and Relu (plus layout transposes QNN inserts)
