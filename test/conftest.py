"""Suite-wide settings.

- Tests under test/ros/ are marked `ros` (they need rclpy and the colcon-built messages).
- `gpu` tests skip cleanly on machines without CUDA (CI has none).
"""
import pathlib

import pytest

_ROS_DIR = pathlib.Path(__file__).parent / "ros"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _ROS_DIR in pathlib.Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.ros)
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
