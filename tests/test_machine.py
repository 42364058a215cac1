"""The server's use of its machine (serving/ui/machine.py) and the load generator's browser-like file fetching."""

from __future__ import annotations

import pytest

from bench.load import file_urls
from densepure_viz.serving.ui import machine


@pytest.mark.parametrize("cpus, threads", [(1, 1), (2, 1), (3, 2), (16, 15)])
def test_compute_threads_leave_one_cpu_to_the_server(monkeypatch, cpus, threads):
    monkeypatch.setattr(machine, "usable_cpus", lambda: cpus)
    assert machine.compute_threads() == threads


def test_a_container_quota_caps_the_usable_cpus(monkeypatch):
    monkeypatch.setattr(machine, "_cgroup_cpus", lambda: 1.5)
    monkeypatch.setattr(machine.os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert machine.usable_cpus() == 2  # 1.5 CPUs of quota on a 64-core host: 2 (rounded up), not 64
    monkeypatch.setattr(machine, "_cgroup_cpus", lambda: None)
    assert machine.usable_cpus() == 64


def test_the_load_users_fetch_every_frames_files_once():
    frames = [  # as gradio_client returns a Purify stream without downloading: updates, FileData, JSON
        [{"label": "x", "__type__": "update"}, {"value": {"path": "/a.png", "url": "http://h/file=/a.png"}}],
        [{"path": "/b.png", "url": "http://h/file=/b.png"}, {"label": 3, "votes": {"3": 8}}, "text",
         {"value": {"url": "http://h/file=/a.png"}}],
    ]
    assert file_urls(frames) == {"http://h/file=/a.png", "http://h/file=/b.png"}
