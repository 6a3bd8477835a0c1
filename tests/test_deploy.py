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
