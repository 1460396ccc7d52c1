"""qwen3_tts_ros: real-time Qwen3-TTS for robots.

`qwen3_tts_ros.engine` is a ROS-free library (torch, never rclpy); `qwen3_tts_ros.node` is the ROS 2
lifecycle node on top of it.  The generated messages (`qwen3_tts_ros.msg`) come from the colcon build
of this package; `extend_path` lets them be found when this source tree is imported from elsewhere.
"""
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)


def __getattr__(name):
    # Lazy so that `import qwen3_tts_ros.msg` (e.g. in a tool without torch) does not import torch.
    if name == "Qwen3TTSCudaGraphs":
        from qwen3_tts_ros.engine import Qwen3TTSCudaGraphs

        return Qwen3TTSCudaGraphs
    raise AttributeError(name)


__all__ = ["Qwen3TTSCudaGraphs"]
