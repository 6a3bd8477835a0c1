"""The deployment files parse, and promtool accepts the scrape config and alert rules."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def test_dashboard_queries_name_exported_metrics():
    dash = json.loads((DEPLOY / "grafana" / "revenge-dashboard.json").read_text())
    from revenge.observability.instruments import Instruments
    from revenge.observability.metrics import Registry

    reg = Registry()
    Instruments(reg)
    known = set()
    for fam in reg.families():
        known.update(fam.sample_names())
    for panel in dash["panels"]:
        for target in panel["targets"]:
            for name in re.findall(r"revenge_[a-z_]+", target["expr"]):
                assert name in known, (panel["title"], name)


def test_alert_rules_parse():
    rules = yaml.safe_load((DEPLOY / "prometheus" / "revenge-alerts.yml").read_text())
    assert {r["alert"] for g in rules["groups"] for r in g["rules"]} >= {"RevengeDown", "RemoteTranscoderBreakerOpen"}


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) is not installed")
def test_promtool_accepts_config_and_rules():
    for args in (["check", "rules", str(DEPLOY / "prometheus" / "revenge-alerts.yml")],
                 ["check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")]):
        res = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stdout + res.stderr


def test_compose_file_describes_the_cluster():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "revenge-1", "revenge-2", "revenge-3", "nginx", "transcoder"} <= set(services)
    ids = [services[f"revenge-{i}"]["environment"]["REVENGE_CLUSTER__NODE_ID"] for i in (1, 2, 3)]
    assert len(set(ids)) == 3
    assert services["transcoder"]["profiles"] == ["transcoders"]


def _nginx() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


@pytest.mark.skipif(_nginx() is None, reason="nginx (Debian package nginx) is not installed")
def test_nginx_accepts_the_cluster_config(tmp_path):
    """``nginx -t`` on the cluster config, with the three upstream names resolved to loopback."""
    conf = (DEPLOY / "nginx" / "revenge-cluster.conf").read_text()
    for i in (1, 2, 3):
        conf = conf.replace(f"revenge-{i}:8096", f"127.0.0.1:{18095 + i}")
    (tmp_path / "logs").mkdir()
    (tmp_path / "site.conf").write_text(conf.replace("listen 80;", "listen 127.0.0.1:18099;"))
    (tmp_path / "nginx.conf").write_text(
        "pid nginx.pid; error_log logs/error.log; events {} "
        f"http {{ access_log off; client_body_temp_path {tmp_path}/tmp; include {tmp_path}/site.conf; }}\n")
    res = subprocess.run([_nginx(), "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
