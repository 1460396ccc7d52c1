"""pip-installable engine + node code (`pip install -e .`), for use without colcon.

The ROS build is ament_cmake (CMakeLists.txt) because this package also generates its messages; colcon
uses CMakeLists.txt and ignores this file.  Neither file pins torch or numpy: they come from the platform.
"""
from setuptools import find_packages, setup

setup(
    name="qwen3_tts_ros",
    version="0.1.0",
    description="Real-time streaming Qwen3-TTS engine (CUDA graphs) and ROS 2 lifecycle node",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["qwen3_tts_ros", "qwen3_tts_ros.*"]),
    # the fused CUDA frame's sources, compiled on the machine that runs them (engine/frame/cuda_build.py)
    package_data={"qwen3_tts_ros.engine.frame": ["csrc/*.cu", "csrc/*.cuh", "csrc/*.h", "csrc/*.cpp"]},
    install_requires=["qwen-tts", "numpy"],
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
