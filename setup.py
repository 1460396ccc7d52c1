"""pip-installable engine + node code (`pip install -e .`), for use without colcon: the console scripts
`qwen3-tts-say` and `tts_node` go on PATH (the environment's bin/).

The ROS build is ament_cmake (CMakeLists.txt) because this package also generates its messages; colcon
uses CMakeLists.txt and ignores this file.  Dependencies follow the install rules, in one place:
torch, torchaudio and numpy come from the platform, the rest from requirements/robot.txt (or
robot-transformers5.txt), and qwen-tts (or qwen-tts-compat) with --no-deps, because its metadata asks for
torchaudio (a PyPI one would pin a PyPI torch over the platform's) and gradio (its web demo only). So nothing
here names qwen-tts or pins torch or numpy; `numpy` only says that one must be there.
"""
from setuptools import find_packages, setup

setup(
    name="qwen3_tts_ros",
    version="0.1.0",
    description="Real-time streaming Qwen3-TTS engine (CUDA graphs) and ROS 2 lifecycle node",
    license="Apache-2.0",
    python_requires=">=3.10",
    # qwen3_tts_ros.testing: test helpers, not installed (an editable install sees the whole source tree).
    packages=find_packages(include=["qwen3_tts_ros", "qwen3_tts_ros.*"], exclude=["qwen3_tts_ros.testing"]),
    install_requires=["numpy"],
    # the fused CUDA frame's sources, compiled on the machine that runs them (engine/frame/cuda_build.py)
    package_data={"qwen3_tts_ros.engine.frame": ["csrc/*.cu", "csrc/*.cuh", "csrc/*.h", "csrc/*.cpp"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/qwen3_tts_ros"]),
        ("share/qwen3_tts_ros", ["package.xml"]),
        ("share/qwen3_tts_ros/launch", ["launch/tts.launch.py"]),
        ("share/qwen3_tts_ros/config", ["config/tts.yaml"]),
    ],
    entry_points={
        "console_scripts": [
            "tts_node = qwen3_tts_ros.node.tts_node:main",
            "player_node = qwen3_tts_ros.node.player_node:main",
            "qwen3-tts-say = qwen3_tts_ros.cli:main",
        ],
    },
)
