#!/usr/bin/env python3
"""Print pip constraints that hold this Python's torch and torchaudio where they are, and numpy below 2.

    python3 scripts/platform_constraints.py > /tmp/platform-constraints.txt
    python3 -m pip install -r requirements/robot.txt -c /tmp/platform-constraints.txt

With these constraints pip either resolves without touching torch/torchaudio/numpy 1.x, or stops with a
conflict; it never swaps a platform build (e.g. NVIDIA's Jetson torch) for one from PyPI. Fails, naming what
is missing, when torch or torchaudio is not installed yet (install the platform's builds first).
"""
import importlib.metadata
import sys


def main() -> int:
    lines = []
    for name in ("torch", "torchaudio"):
        try:
            __import__(name)
            # The installed distribution's version, which is what pip compares (torch.__version__ may add a
            # local label such as +cu121 that the distribution does not have).
            version = importlib.metadata.version(name)
        except (ImportError, importlib.metadata.PackageNotFoundError) as exc:
            print(f"platform_constraints: {name} is not installed ({exc}); install the platform's {name} "
                  "first (docs/INSTALL.md)", file=sys.stderr)
            return 1
        lines.append(f"{name}=={version}")
    try:
        import numpy
    except ImportError:
        numpy = None
    if numpy is not None and int(numpy.__version__.split(".")[0]) >= 2:
        print(f"platform_constraints: numpy {numpy.__version__} is installed; Jetson torch wheels and ROS 2 "
              "Humble / Jazzy from apt are built against numpy 1.x: python3 -m pip install 'numpy<2' first",
              file=sys.stderr)
        return 1
    lines.append("numpy<2")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
