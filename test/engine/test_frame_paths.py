"""FrameOptions (the frame loop's one options object), the frame path chooser, the engine's capture report."""

import re

import numpy as np
import pytest
import torch

from qwen3_tts_ros.engine import Qwen3TTSCudaGraphs, SamplingParams, SpeechRequest
from qwen3_tts_ros.engine.errors import EngineConfigError
from qwen3_tts_ros.engine.frame.options import DEFAULT_MAX_SEQ_LEN, FrameOptions
from qwen3_tts_ros.engine.frame.paths import AUTO_ORDER, FRAME_PATHS, choose_frame_path, path_names

CPU = torch.device("cpu")


def test_the_documented_dict_becomes_frame_options():
    assert FrameOptions.from_mapping(None) == FrameOptions()
    assert FrameOptions().max_seq_len == DEFAULT_MAX_SEQ_LEN
    cases = [
        ({"prefill_buckets": [32, 64]}, dict(prefill_buckets=(32, 64), path="auto")),
        ({"compile": False}, dict(path="eager")),
        ({"compile": True}, dict(path="compiled")),
        ({"compile": None, "fused": None}, dict(path="auto")),
        ({"fused": True, "compile": False}, dict(path="fused-triton")),  # fused: nothing left to compile
        ({"fused": False}, dict(path="auto")),
        (
            {"path": "eager", "launch_ahead": 3, "frames_per_replay": 2},
            dict(launch_ahead=3, frames_per_replay=2),
        ),
    ]
    for mapping, expected in cases:
        options = FrameOptions.from_mapping(mapping, max_seq_len=256, use_cuda_graphs=None)
        assert (options.max_seq_len, options.use_cuda_graphs) == (256, True), mapping
        for name, value in expected.items():
            assert getattr(options, name) == value, (mapping, name)
    counted = FrameOptions(max_seq_len=np.int64(256), launch_ahead=np.int32(2))  # any integer type
    assert (counted.max_seq_len, counted.launch_ahead) == (256, 2) and type(counted.max_seq_len) is int
    given = FrameOptions(max_seq_len=128, path="eager")
    assert FrameOptions.from_mapping(given) == given
    assert FrameOptions.from_mapping(given, max_seq_len=None).max_seq_len == 128
    assert FrameOptions.from_mapping(given, max_seq_len=512) == FrameOptions(max_seq_len=512, path="eager")


def test_frame_options_refuse_what_they_do_not_know():
    refused = [
        (
            {"fusd": True},
            r"^frame_options: unknown key\(s\) 'fusd'; known: compile, frames_per_replay, fused, ",
        ),
        ({"max_seq_len": 64}, r"unknown key\(s\) 'max_seq_len'"),  # an argument of its own
        ({"path": "eager", "compile": False}, "either path or the compile / fused switches"),
        ({"compile": 1}, r"^frame_options compile must be true, false or None, got 1$"),
        (
            {"path": "warp"},
            r"^frame path must be 'auto' or one of fused-triton, compiled, eager, got 'warp'$",
        ),
        ({"launch_ahead": 0}, r"^launch_ahead must be >= 1, got 0$"),
        ({"frames_per_replay": True}, r"^frames_per_replay must be >= 1, got True$"),
        ({"prefill_buckets": (32, 4096)}, r"^prefill_buckets \[32, 4096\] must be <= max_seq_len=2048$"),
    ]
    for mapping, message in refused:
        with pytest.raises(ValueError, match=message):
            FrameOptions.from_mapping(mapping)


def test_the_chooser_names_its_reason():
    assert path_names() == tuple(path.name for path in FRAME_PATHS)
    assert set(AUTO_ORDER) <= set(path_names())
    compiled = dict(zip(path_names(), FRAME_PATHS))["compiled"]
    why_not = compiled.unavailable(CPU)
    assert why_not is not None and "CUDA" in why_not
    path, reason = choose_frame_path(CPU)  # auto: compiled is tried first and cannot run here
    assert path.name == "eager" and reason.startswith("eager (auto on cpu: ")
    assert f"not compiled: {why_not}" in reason
    path, reason = choose_frame_path(CPU, "eager")
    assert (path.name, reason) == ("eager", "eager (asked for)")
    with pytest.raises(
        EngineConfigError, match=rf"^frame path 'compiled' cannot run on cpu: {re.escape(why_not)}$"
    ):
        choose_frame_path(CPU, "compiled")
    with pytest.raises(ValueError, match=r"^unknown frame path 'warp'; known: "):
        choose_frame_path(CPU, "warp")


@pytest.mark.usefixtures("torch_single_thread")
def test_capture_report_counts_prefills_and_names_the_path(tiny_custom_voice_tts):
    engine = Qwen3TTSCudaGraphs(
        tiny_custom_voice_tts, max_seq_len=256, frame_options={"compile": False, "prefill_buckets": (8,)}
    )
    report = engine.capture_report()
    assert (report.frame_path, report.frame_path_reason) == ("eager", "eager (asked for)")
    assert report.frame_path_description == "reference frame, eager torch operations"
    assert (report.frame_graph, report.graphs_captured, report.codec_graph_frames) == (False, 0, ())
    assert report.uncaptured_prefills == 0
    sampling = SamplingParams.merged(None, do_sample=False, subtalker_dosample=False, max_new_tokens=3)
    request = SpeechRequest(text="Hi.", mode="custom_voice", speaker="vivian", sampling=sampling)
    engine.synthesize(request)
    engine.synthesize(request)
    report = engine.capture_report()
    # CPU: nothing is captured, so both prefills ran eagerly (the bucket of 8 fits no prompt of this voice)
    assert (report.uncaptured_prefills, report.prefill_bucket_graphs, report.prefill_bucket_replays) == (
        2,
        (),
        {},
    )
    engine.close()
    assert engine.capture_report() == report  # the figures at close
