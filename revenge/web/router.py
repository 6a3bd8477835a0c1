"""A tiny router over the *raw* request path.

Why raw: percent-decoding before matching is how ``%2F`` and ``..%2F`` sneak past a check. Each
``{param}`` matches one raw segment (no ``/``); the handler validates its grammar. The matched
template is what metrics use as the ``route`` label, so tokens and ids never become series.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Awaitable, Callable

Handler = Callable[..., Awaitable[None]]
UNMATCHED = "unmatched"


@dataclass(slots=True)
class Route:
    template: str
    methods: dict[str, Handler]
    parts: tuple[str, ...] = field(default=())
    params: tuple[tuple[int, str], ...] = field(default=())

    def allow_header(self) -> str:
        return ", ".join(sorted(self.methods))


@dataclass(slots=True)
class Match:
    route: Route | None
    params: dict[str, str]
    handler: Handler | None

    @property
    def template(self) -> str:
        return self.route.template if self.route is not None else UNMATCHED


class Router:
    def __init__(self) -> None:
        self._static: dict[str, Route] = {}
        self._dynamic: dict[int, list[Route]] = {}
        self._by_template: dict[str, Route] = {}
        self._prefixes: list[tuple[str, Route]] = []

    def add(self, methods: str | list[str], template: str, handler: Handler) -> None:
        if isinstance(methods, str):
            methods = [methods]
        route = self._by_template.get(template)
        if route is None:
            parts = tuple(template.split("/"))
            params = tuple((i, p[1:-1]) for i, p in enumerate(parts) if p.startswith("{") and p.endswith("}"))
            route = Route(template, {}, parts, params)
            self._by_template[template] = route
            if params:
                self._dynamic.setdefault(len(parts), []).append(route)
            else:
                self._static[template] = route
        for m in methods:
            route.methods[m.upper()] = handler
            if m.upper() == "GET" and "HEAD" not in route.methods:
                route.methods["HEAD"] = handler

    def add_prefix(self, methods: list[str], prefix: str, template: str, handler: Handler) -> None:
        """Every path under ``prefix`` goes to ``handler`` (which checks its own grammar), labelled
        ``template`` in metrics."""
        route = Route(template, {m: handler for m in methods})
        self._by_template[template] = route
        self._prefixes.append((prefix, route))

    def match(self, method: str, path: str) -> Match:
        for prefix, proute in self._prefixes:
            if path.startswith(prefix):
                return Match(proute, {}, proute.methods.get(method, proute.methods.get("*")))
        route = self._static.get(path)
        params: dict[str, str] = {}
        if route is None:
            segs = path.split("/")
            for candidate in self._dynamic.get(len(segs), ()):
                ok = True
                for i, part in enumerate(candidate.parts):
                    if part.startswith("{"):
                        if not segs[i]:
                            ok = False
                            break
                    elif part != segs[i]:
                        ok = False
                        break
                if ok:
                    route = candidate
                    params = {name: segs[i] for i, name in candidate.params}
                    break
        if route is None:
            return Match(None, {}, None)
        return Match(route, params, route.methods.get(method))

    def routes(self) -> list[Route]:
        return list(self._by_template.values())

