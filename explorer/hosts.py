"""Serve only requests whose ``Host`` header names this server (``python explorer/app.py``).

Bokeh checks the websocket's ``Origin`` (``--allow-websocket-origin``) but answers a plain ``GET /app`` for any
``Host``, building a whole session each time. A page on another site can reach a server on 127.0.0.1 through DNS
rebinding (its own name, re-resolved to 127.0.0.1): its requests then carry *its* host name. :class:`AllowedHosts`
is a Bokeh auth provider that accepts a request only when its ``Host`` is one of the allowed ``HOST[:PORT]``
entries (the same list as the websocket origins) and answers every other request with a 403 (:func:`refuse`,
directly: no redirect to a login page first), before any session is built.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from bokeh.server.auth_provider import AuthProvider
from tornado.web import RequestHandler

REJECTED_PATH = "/host-not-allowed"


def split_host(value: str) -> tuple[str, int | None]:
    """``"Example.org:5006"`` → ``("example.org", 5006)``; ``"[::1]:80"`` → ``("[::1]", 80)``; no port → ``None``."""
    value = value.strip().lower()
    if value.startswith("["):  # [IPv6]:port
        host, _, rest = value.partition("]")
        host, port = host + "]", rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        host, port = value.split(":")
    else:  # a name without a port (or a bare IPv6 address)
        host, port = value, ""
    return host, int(port) if port.isdigit() else None


def host_allowed(host: str, allowed: Iterable[str]) -> bool:
    """True when ``host`` (a request's Host header) matches an entry ``HOST[:PORT]`` of ``allowed``.

    An entry without a port (or with port 0: "any free port") matches that host name on any port."""
    name, port = split_host(host)
    for entry in allowed:
        allowed_name, allowed_port = split_host(entry)
        if name == allowed_name and (allowed_port in (None, 0) or port == allowed_port):
            return True
    return False


#: The body of the 403 answer.
REFUSAL = (
    "403: this GoeCTP Explorer does not answer to that host name. Open it by the address it was started "
    "with, or restart it with --allow-websocket-origin HOST[:PORT].\n"
)


def refuse(handler: RequestHandler) -> None:
    """End ``handler``'s request with the 403 (``tornado.web.Finish``: no error page, no redirect)."""
    from tornado.web import Finish

    handler.clear()
    handler.set_status(403)
    handler.set_header("Content-Type", "text/plain; charset=utf-8")
    raise Finish(REFUSAL)


class HostNotAllowed(RequestHandler):
    """403 for a request whose Host header is not one this server answers to."""

    def get(self) -> None:
        refuse(self)


class AllowedHosts(AuthProvider):
    """Bokeh auth provider: a request is let in only when its Host header is one of ``hosts``."""

    def __init__(self, hosts: Iterable[str]) -> None:
        self.hosts = tuple(hosts)
        super().__init__()

    @property
    def get_user(self) -> Callable[[RequestHandler], str | None]:
        def user(handler: RequestHandler) -> str | None:
            if host_allowed(handler.request.host or "", self.hosts):
                return "local"
            refuse(handler)  # the 403 itself, not a 302 to the login page first
            return None

        return user

    @property
    def login_url(self) -> str:
        return REJECTED_PATH

    @property
    def login_handler(self) -> type[RequestHandler]:
        return HostNotAllowed


def origin_allowed(origin: str | None, hosts: Iterable[str]) -> bool:
    """True when a request's ``Origin`` header (``scheme://host[:port]``) names one of ``hosts``."""
    if not origin or "://" not in origin:
        return False
    return host_allowed(origin.split("://", 1)[1].split("/", 1)[0], hosts)


def safe_autoload_handler() -> type[RequestHandler]:
    """Panel's ``/app/autoload.js`` handler without its two faults: an ``OPTIONS`` request without an ``Origin``
    header ended in an uncaught exception (a 500 and a traceback in the log), and every answer allowed any web site
    (``Access-Control-Allow-Origin: *``, or the caller's own ``Origin`` when it sent cookies). Here a preflight
    gets a 204, and only an origin the server accepts websockets from (``--allow-websocket-origin``) is allowed."""
    from panel.io.server import AutoloadJsHandler

    class SafeAutoloadJsHandler(AutoloadJsHandler):
        def _allowed_origin(self) -> str | None:
            origin = self.request.headers.get("Origin")
            return origin if origin_allowed(origin, self.application.websocket_origins) else None

        def set_default_headers(self) -> None:  # no wildcard
            pass

        def _cors(self) -> None:
            self.clear_header("Access-Control-Allow-Origin")
            origin = self._allowed_origin()
            if origin:
                self.set_header("Access-Control-Allow-Origin", origin)
                self.set_header("Access-Control-Allow-Credentials", "true")
                self.set_header("Vary", "Origin")

        async def get(self, *args, **kwargs) -> None:
            await super().get(*args, **kwargs)
            self._cors()

        async def options(self, *args, **kwargs) -> None:
            self.set_status(204)
            self._cors()
            self.set_header("Access-Control-Allow-Methods", "GET, OPTIONS")

    return SafeAutoloadJsHandler


def install_safe_autoload() -> None:
    """Serve ``/autoload.js`` with :func:`safe_autoload_handler` in the servers this process starts afterwards
    (``pn.serve``: ``python explorer/app.py``; Panel's routes are a module-level list it copies at start)."""
    from panel.io import server

    handler = safe_autoload_handler()
    server.per_app_patterns[:] = [
        (route, handler) if route == "/autoload.js" else (route, *rest) for route, *rest in server.per_app_patterns
    ]
