"""The pip route of README: `pip install -e .` puts `qwen3-tts-say` and `tts_node` on PATH (the environment's
bin/; before, setup.cfg sent them to lib/qwen3_tts_ros/) and asks pip for no dependency that the install
rules bring another way (before, `qwen-tts` unpinned, which pulled torchaudio and gradio from PyPI).

A fresh virtualenv that sees this one's packages through a .pth file (so pip builds offline with the
setuptools here), the checkout installed into it editable with --no-deps, then its commands run.
"""
import os
import pathlib
import subprocess
import sys
import sysconfig

REPO = pathlib.Path(__file__).resolve().parents[2]


def run(args, **kwargs):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # only what the install gives
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=600, **kwargs)


def test_pip_install_editable_puts_both_commands_on_path(tmp_path):
    venv = tmp_path / "venv"
    made = run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    assert made.returncode == 0, made.stderr
    site = pathlib.Path(run([str(venv / "bin" / "python"), "-c",
                             "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (site / "outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps",
                     "--no-build-isolation", "--no-index", "-e", str(REPO)], cwd=tmp_path)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    for command in ("qwen3-tts-say", "tts_node"):
        exe = venv / "bin" / command
        assert exe.is_file() and os.access(exe, os.X_OK), sorted(p.name for p in (venv / "bin").iterdir())
        assert not (venv / "lib" / "qwen3_tts_ros" / command).exists()
    path = f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"
    helped = run(["bash", "-c", f'PATH="{path}"; command -v qwen3-tts-say && qwen3-tts-say --help'],
                 cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.splitlines()[0] == str(venv / "bin" / "qwen3-tts-say")
    assert "usage: qwen3-tts-say" in helped.stdout

    requires = run([str(venv / "bin" / "python"), "-c",
                    "import importlib.metadata as m; print(m.requires('qwen3_tts_ros'))"], cwd=tmp_path)
    assert requires.stdout.strip() == "['numpy']", requires.stdout + requires.stderr
