"""Security: no network without allow_download, local files only, no remote code (transformers'
trust-remote-code option), nothing that arrives on a topic is executed or used as a path.

The node runs as a real process with a Python audit hook (sys.addaudithook, installed by a sitecustomize.py
put first on its PYTHONPATH) that records every Python-level network event (socket.connect, getaddrinfo,
sendto, urllib / http.client) and every open / exec / compile / subprocess / os.system event whose arguments
contain a marker string that only the texts sent on tts/text carry. DDS (Fast DDS, C++) opens its UDP
sockets below Python, so it is not in the record; the hub client, urllib, requests and librosa are, as
Python code. A control run shows the hook does record a connect and an open.
"""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import uuid

import pytest

from qwen3_tts_ros.testing.waits import EVENT_TIMEOUT_S as TIMEOUT

pytestmark = pytest.mark.ros

REPO = pathlib.Path(__file__).resolve().parents[2]
FORBIDDEN = "trust_remote" + "_code"  # split so that this file does not match itself

NETWORK_EVENTS = ("socket.connect", "socket.getaddrinfo", "socket.sendto", "socket.sendmsg",
                  "socket.gethostbyname", "socket.gethostbyaddr", "urllib.Request", "http.client.connect",
                  "ftplib.connect", "smtplib.connect")
AUDIT_HOOK = r'''
import json, os, sys, threading
_log = open(os.environ["Q3_AUDIT_LOG"], "a", buffering=1)
_marker = os.environ["Q3_AUDIT_MARKER"]
_lock = threading.Lock()
NETWORK = set(NETWORK_EVENTS_PLACEHOLDER)
ACTIONS = {"open", "exec", "compile", "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn",
           "os.spawn", "os.listdir", "os.scandir", "os.remove", "os.rename", "os.mkdir", "shutil.rmtree",
           "ctypes.dlopen", "pty.spawn", "os.startfile", "webbrowser.open"}

def _mentions_marker(args):
    for arg in args:
        if isinstance(arg, str) and _marker in arg:
            return True
        if isinstance(arg, bytes) and _marker.encode() in arg:
            return True
        if not isinstance(arg, (str, bytes)) and _marker in repr(arg)[:2000]:
            return True
    return False

def _record(event, args):
    with _lock:
        _log.write(json.dumps({"pid": os.getpid(), "event": event, "args": repr(args)[:300]}) + "\n")

def _hook(event, args):
    if event in NETWORK or (event in ACTIONS and _mentions_marker(args)):
        _record(event, args)

_record("installed", (sys.argv[:3],))
sys.addaudithook(_hook)
'''.replace("NETWORK_EVENTS_PLACEHOLDER", repr(NETWORK_EVENTS))


@pytest.fixture
def audited_env(tmp_path):
    hook_dir = tmp_path / "audit_hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(AUDIT_HOOK)
    log = tmp_path / "audit.jsonl"
    marker = f"q3marker{uuid.uuid4().hex[:10]}"
    env = {
        "PYTHONPATH": f"{hook_dir}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "Q3_AUDIT_LOG": str(log),
        "Q3_AUDIT_MARKER": marker,
        "HF_HOME": str(tmp_path / "empty_hf_home"),  # nothing cached
        "HF_HUB_OFFLINE": "0",  # the node must not rely on the hub's offline switch
        "TRANSFORMERS_OFFLINE": "0",
    }

    def records():
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]

    return env, marker, records


def _non_loopback_network(records) -> list[dict]:
    loopback = ("127.0.0.1", "'::1'", "localhost", "AF_UNIX")
    return [r for r in records if r["event"] in NETWORK_EVENTS and not any(x in r["args"] for x in loopback)]


def test_the_audit_hook_records_connects_and_opens(audited_env, tmp_path):
    env, marker, records = audited_env
    code = ("import socket\n"
            "try:\n    socket.create_connection(('192.0.2.1', 9), timeout=0.05)\nexcept OSError:\n    pass\n"
            f"open({str(tmp_path / marker)!r}, 'w').close()\n")
    subprocess.run([sys.executable, "-c", code], env=dict(os.environ, **env), check=True, timeout=60)
    events = {r["event"] for r in records()}
    assert {"installed", "socket.connect", "open"} <= events, records()


def test_node_never_touches_the_network_nor_uses_topic_text_as_anything_but_text(
        audited_env, tmp_path, tiny_custom_voice_checkpoint, node_factory, base_overrides, long_text):
    env, marker, records = audited_env
    overrides = dict(base_overrides, model="Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice",
                     **{"sampling.max_new_tokens": 6, "text.split_sentences": False})
    node = node_factory(tmp_path / "node", overrides, env=dict(env, OMP_NUM_THREADS="1"))
    client = node.client
    try:
        assert node.state() == "unconfigured"
        # A hub id that is not in the (empty) local cache: refused without a download attempt.
        assert not client.change_state("configure")
        assert "not in the Hugging Face cache" in node.log() and "allow_download" in node.log()
        # A URL as the model: refused.
        node.set_params(model="https://huggingface.co/Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice")
        assert not client.change_state("configure")
        assert "not a URL" in node.log()
        # The model directory's name carries the marker too, so the record must show the node opening it:
        # proof that the hook watches this process after start-up.
        model_dir = tmp_path / f"{marker}_model"
        shutil.copytree(tiny_custom_voice_checkpoint, model_dir)
        node.set_params(model=str(model_dir))
        assert client.change_state("configure") and client.change_state("activate"), node.log()
        assert client.wait_for_subscriber(TIMEOUT)

        topic = f"{marker}_topic"
        hostile = [
            f"/tmp/{topic}.wav",
            f"file:///tmp/{topic}",
            f"https://{topic}.example.com/voice.wav",
            f"$(touch /tmp/{topic}) `touch /tmp/{topic}`; touch /tmp/{topic}",
            f"__import__('os').system('touch /tmp/{topic}')",
            f"{{{topic}}} %s %n {{0.__class__}} ../../{topic}",
        ]
        mark = client.mark()
        for text in hostile:
            client.say(text)
        # every latency and every utterance's final chunk (another topic: it may come after its latency)
        assert client.wait_for(lambda: len(client.latencies(mark["latency"])) == len(hostile)
                               and client.stream_problems(mark["chunks"]) == [], TIMEOUT), node.log()
        spoken = [m.text_length for m in client.latencies(mark["latency"])]
        assert spoken == [len(t) for t in hostile], "each text is spoken as text, whole"
        assert client.stream_problems(mark["chunks"]) == []

        # SIGTERM in the middle of an utterance: final chunk, clean exit (as SIGINT, test_faults.py).
        node.set_params(sampling__max_new_tokens=2048)
        mark = client.mark()
        client.say(long_text)
        assert client.wait_for(lambda: client.count("chunks") > mark["chunks"] + 1, TIMEOUT), node.log()
        rc = node.proc.stop(timeout=30.0, sig=signal.SIGTERM)
        assert rc == 0, node.log()
        assert client.wait_for(lambda: client.finals(mark["chunks"]), TIMEOUT)
        assert client.speaking[-1].msg.data is False
        assert client.stream_problems(mark["chunks"]) == []
    finally:
        node.close()

    seen = records()
    node_pid = node.proc.proc.pid
    assert any(r["event"] == "installed" and r["pid"] == node_pid for r in seen), \
        f"the audit hook did not run in the node process {node_pid}: {seen[:3]}"
    in_node = [r for r in seen if r["pid"] == node_pid]
    assert _non_loopback_network(in_node) == [], "network use without allow_download"
    opened_model = [r for r in in_node if r["event"] == "open" and f"{marker}_model" in r["args"]]
    assert opened_model, "the hook must see the node open the model files"
    assert [r for r in in_node if f"{marker}_topic" in r["args"]] == [], "topic text used as path/code"
    assert not list(pathlib.Path("/tmp").glob(f"{marker}_topic*"))
    print(f"audit: {len(in_node)} events recorded in the node process ({len(opened_model)} opens of the "
          f"model files), none of them network or topic text")


def test_no_remote_code_loading_anywhere():
    """Neither this repository's code and configuration nor the installed qwen-tts ask transformers to run
    code shipped with a checkpoint."""
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    suffixes = {".py", ".sh", ".yaml", ".yml", ".cfg", ".toml", ".txt", ".xml", ".json"}
    files = [REPO / f for f in tracked.splitlines() if pathlib.Path(f).suffix in suffixes]
    import qwen_tts

    files += sorted(pathlib.Path(qwen_tts.__file__).parent.rglob("*.py"))
    assert len(files) > 50
    offenders = [str(f) for f in files if f.is_file() and FORBIDDEN in f.read_text(errors="replace")]
    assert offenders == []
