"""The registry and exposition (observability.md §1–2), parsed back with reference parsers."""
from __future__ import annotations

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_prom

from revenge.observability.metrics import Counter, Gauge, Histogram, Info, MetricsError, Registry


def make() -> Registry:
    r = Registry(max_series=5)
    Info("revenge_build", "Build.", ["version"], registry=r).labels("1.0")
    c = Counter("revenge_http_requests_total", 'Requests "sent".', ["method", "route"], registry=r)
    c.labels("GET", 'a"b\\c\n').inc()
    c.labels("GET", "/x").inc(2)
    g = Gauge("revenge_sessions", "Sessions\nactive.", registry=r)
    g.set(3)
    h = Histogram("revenge_wait_seconds", "Wait.", ["outcome"], buckets=[0.005, 0.5, 1], registry=r)
    for v in (0.003, 0.003, 0.7):
        h.labels("ready").observe(v)
    return r


def test_prometheus_text_format():
    text = make().render().decode()
    assert '# TYPE revenge_http_requests_total counter' in text
    assert 'revenge_http_requests_total{method="GET",route="a\\"b\\\\c\\n"} 1\n' in text
    assert '# HELP revenge_http_requests_total Requests "sent".\n' in text
    assert "# HELP revenge_sessions Sessions\\nactive.\n" in text
    assert "revenge_sessions 3.0\n" in text
    assert "revenge_build_info{version=\"1.0\"} 1\n" in text
    assert (
        'revenge_wait_seconds_bucket{outcome="ready",le="0.005"} 2\n'
        'revenge_wait_seconds_bucket{outcome="ready",le="0.5"} 2\n'
        'revenge_wait_seconds_bucket{outcome="ready",le="1.0"} 3\n'
        'revenge_wait_seconds_bucket{outcome="ready",le="+Inf"} 3\n'
        'revenge_wait_seconds_sum{outcome="ready"} 0.706\n'
        'revenge_wait_seconds_count{outcome="ready"} 3\n'
    ) in text
    assert "\r" not in text and text.endswith("\n")
    fams = {f.name: f for f in parse_prom(text)}
    assert fams["revenge_http_requests"].samples[0].labels["route"] == 'a"b\\c\n'
    assert fams["revenge_wait_seconds"].type == "histogram"


def test_openmetrics_format():
    text = make().render(openmetrics=True).decode()
    assert text.endswith("# EOF\n")
    assert "# TYPE revenge_http_requests counter\n" in text
    assert '# HELP revenge_http_requests Requests \\"sent\\".\n' in text
    assert "# TYPE revenge_build info\n" in text
    assert "# UNIT revenge_wait_seconds seconds\n" in text
    assert "_created" not in text
    fams = {f.name: f for f in parse_om(text)}
    assert fams["revenge_build"].type == "info"
    assert fams["revenge_http_requests"].samples[0].name == "revenge_http_requests_total"


def test_empty_registry_renders_empty_body():
    assert Registry().render() == b""
    assert Registry().render(openmetrics=True) == b"# EOF\n"


def test_unlabelled_family_exposes_zero_before_use():
    r = Registry()
    Counter("revenge_x_total", "X.", registry=r)
    assert "revenge_x_total 0\n" in r.render().decode()


def test_same_registration_returns_existing_and_differences_fail():
    r = Registry()
    a = Counter("revenge_a_total", "A.", ["x"], registry=r)
    b = Counter("revenge_a_total", "A.", ["x"], registry=r)
    b.labels("1").inc()
    assert a.labels("1").get() == 1
    with pytest.raises(MetricsError):
        Counter("revenge_a_total", "A.", ["y"], registry=r)
    with pytest.raises(MetricsError):
        Gauge("revenge_a_total", "A.", ["x"], registry=r)
    Histogram("revenge_h", "H.", buckets=[1.0], registry=r)
    with pytest.raises(MetricsError):
        Gauge("revenge_h_count", "collides with a generated sample", registry=r)
    with pytest.raises(MetricsError):
        Histogram("revenge_h", "H.", buckets=[2.0], registry=r)


def test_names_labels_and_values_are_checked():
    r = Registry()
    for bad in ("1abc", "a-b", ""):
        with pytest.raises(MetricsError):
            Gauge(bad, "x", registry=r)
    with pytest.raises(MetricsError):
        Gauge("g1", "x", ["__reserved"], registry=r)
    with pytest.raises(MetricsError):
        Histogram("h1", "x", ["le"], registry=r)
    c = Counter("c1_total", "x", ["a", "b"], registry=r)
    with pytest.raises(MetricsError):
        c.labels("only-one")
    with pytest.raises(ValueError):
        c.labels("1", "2").inc(-1)
    with pytest.raises(MetricsError):
        c.inc()  # labelled family needs .labels()
    h = Histogram("h2", "x", registry=r)
    with pytest.raises(ValueError):
        h.observe(float("nan"))


def test_series_limit_drops_updates_and_counts_them():
    r = Registry(max_series=2)
    c = Counter("revenge_c_total", "C.", ["id"], registry=r)
    for i in range(5):
        c.labels(str(i)).inc()
    text = r.render().decode()
    assert text.count("revenge_c_total{") == 2
    assert 'revenge_metrics_series_dropped_total{metric="revenge_c_total"} 3\n' in text


def test_callback_gauges_and_histogram_timer():
    r = Registry()
    items = [1, 2, 3]
    g = Gauge("revenge_items", "Items.", registry=r)
    g.set_function(lambda: len(items))
    items.append(4)
    assert "revenge_items 4.0\n" in r.render().decode()
    h = Histogram("revenge_t_seconds", "T.", registry=r)
    with h.time():
        pass
    assert "revenge_t_seconds_count 1\n" in r.render().decode()


def test_count_equals_inf_bucket_always():
    r = Registry()
    h = Histogram("revenge_v", "V.", buckets=[1, 2], registry=r)
    for v in (0.5, 1.5, 5, -3):
        h.observe(v)
    fam = next(iter(parse_prom(r.render().decode())))
    samples = {(s.name, s.labels.get("le")): s.value for s in fam.samples}
    assert samples[("revenge_v_bucket", "+Inf")] == samples[("revenge_v_count", None)] == 4
