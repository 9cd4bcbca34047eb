"""The backend registry: every server backend is declared here once.

The server command line (`python -m servers --backend`), `ServerConfig`'s
validation, `servers.launch.available_backends`, bench's choices, the charts'
colours and the test matrix all read this module; none of them lists backends
itself.

A module outside the package can add backends: name it in the environment
variable SELECTBENCH_PLUGINS (comma-separated importable module names) and call
`register(Backend(...))` at its import. The plugins are imported once, on the
first lookup, in every process that uses the registry (bench and the server
subprocess alike, which inherits the environment).

    from servers.registry import Backend, FAMILY_PYTHON_LOOP, register

    register(Backend(
        name="toy", family=FAMILY_PYTHON_LOOP, mechanism="poll",
        wait_instrumented=True, fd_number_limit=None, colour="#e377c2",
        factory="toy_plugin:make_server",  # (config, listener, stats) -> object with run()
    ))

The presets and scenarios choose backends by ``Role`` (a family, a mechanism,
descriptor-limited or not, edge-triggered or not), resolved against this registry
when a run is planned: a plugin backend joins the cells of every role it fits.
What a backend can serve (its protocols, the clients it holds) is declared here
too (``Backend.cannot_serve``); the planner leaves out, and states, what it cannot.

A backend's look on the charts (``Backend.look``) is its colour, the marker of its
mechanism, the line style of its family and its name as the legend's label, unless
its declaration names a marker, line style or label of its own.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from servers.limits import FD_SETSIZE, SetupError

FAMILY_PYTHON_LOOP = "python-event-loop"
FAMILY_PYTHON_REFERENCE = "python-reference"
FAMILY_C = "c"
FAMILY_EXTERNAL = "external"
# One server declared as select, poll and epoll (servers.calibration_backends): the
# A/A check, loaded only through SELECTBENCH_PLUGINS by `bench run --calibrate`.
FAMILY_SAME_SERVER = "same-server"
PLUGINS_ENV = "SELECTBENCH_PLUGINS"
# Descriptors a server holds besides client sockets (stdio, listening socket, control
# channel, a reserve descriptor for the EMFILE trick, wake-up pipes...): a backend whose
# descriptor NUMBERS are limited holds this many fewer clients.
SERVER_RESERVED_FDS = 16


@dataclass(frozen=True)
class FamilyLook:
    """How the charts and the verdict show a family."""

    label: str
    """The family's name in a sentence and in the charts' legends."""
    linestyle: str
    """matplotlib line style of its backends' series, so one legend tells the families apart."""


FAMILY_LOOKS: dict[str, FamilyLook] = {
    FAMILY_PYTHON_LOOP: FamilyLook("Python", "-"),
    FAMILY_C: FamilyLook("C", "--"),
    # The external family holds HAProxy's backends (issue 10); a family of another
    # outside server would get its own family constant and look.
    FAMILY_EXTERNAL: FamilyLook("HAProxy", ":"),
    FAMILY_PYTHON_REFERENCE: FamilyLook("Python reference points", "-."),
    FAMILY_SAME_SERVER: FamilyLook("same-server (A/A)", "-"),
}
# A family nobody declared a look for (a plugin's own) is drawn solid and named as it is.
DEFAULT_LINESTYLE = "-"
# Marker by readiness mechanism, so a backend and its twins in other families share one.
# select-big (select(2) on bitmaps sized to RLIMIT_NOFILE) has select's: on a chart its
# line reads as select's going on past 1,024.
MECHANISM_MARKERS: dict[str, str] = {
    "select": "s", "select-big": "s", "poll": "^", "epoll": "o", "epoll-et": "D",
    "asyncio": "v", "uvloop": "P", "threads": "X",
    "uring-poll": "h",
}  # fmt: skip
DEFAULT_MARKER = "o"


def family_label(family: str) -> str:
    """How the verdict and the charts name ``family`` in a sentence."""
    look = FAMILY_LOOKS.get(family)
    return look.label if look is not None else family


def family_linestyle(family: str) -> str:
    look = FAMILY_LOOKS.get(family)
    return look.linestyle if look is not None else DEFAULT_LINESTYLE


def mechanism_marker(mechanism: str) -> str:
    return MECHANISM_MARKERS.get(mechanism, DEFAULT_MARKER)


@dataclass(frozen=True)
class Look:
    """A backend on every chart: its series' colour, marker and line style, its legend label."""

    colour: str
    marker: str
    linestyle: str
    label: str


class UnknownBackend(KeyError):
    """No backend of that name is registered; the message lists the ones that are."""

    def __str__(self) -> str:  # KeyError's str() would quote the whole sentence
        return str(self.args[0]) if self.args else "unknown backend"


class PluginError(SetupError):
    """A module named in SELECTBENCH_PLUGINS cannot be imported."""


@dataclass(frozen=True)
class Backend:
    """One way of serving connections, declared once."""

    name: str
    """The name on every command line, table row and chart legend."""
    family: str
    """FAMILY_PYTHON_LOOP, FAMILY_PYTHON_REFERENCE, FAMILY_C or FAMILY_EXTERNAL."""
    mechanism: str
    """The readiness mechanism ("select", "poll", "epoll", "epoll-et"), or the reference
    point's own name ("asyncio", "uvloop", "threads")."""
    wait_instrumented: bool
    """True when the server times its wait call (the stats' wait_* counters are real)."""
    fd_number_limit: int | None
    """Descriptor NUMBERS it can watch (select: FD_SETSIZE); None = only RLIMIT_NOFILE.
    The declared figure, for planning; a running server reports the one in force in its
    stats (the select server asks select itself at start-up)."""
    colour: str
    """matplotlib colour of this backend on every chart."""
    factory: str
    """"module:callable", resolved in the server process: callable(config, listener, stats)
    returns the server object, whose run() installs SIGTERM/SIGINT handling, then calls
    servers.limits.release_stop_signals(), and serves until one arrives."""
    requires: tuple[str, ...] = ()
    """Importable modules it needs beyond the standard library."""
    install_hint: str = ""
    """The command that installs what `requires` names."""
    description: str = ""
    protocols: tuple[str, ...] = ("echo", "http")
    """The protocols it serves (HAProxy answers HTTP only: it has no echo)."""
    descriptors_per_client: int = 1
    """Descriptors it counts against its limits per client connection (HAProxy reserves
    two: the server side a proxy would open); claim 1 weighs connections served by it."""
    marker: str | None = None
    """matplotlib marker on the charts; None: its mechanism's (``MECHANISM_MARKERS``)."""
    linestyle: str | None = None
    """matplotlib line style on the charts; None: its family's (``FAMILY_LOOKS``)."""
    label: str | None = None
    """Its name in the charts' legends; None: ``name``."""
    edge_triggered: bool = False
    """Readiness reported once per change (EPOLLET; io_uring's multishot poll, which is never
    level-triggered): the roles that want one level-triggered backend per mechanism omit it."""
    availability: str | None = None
    """"module:callable" asked after ``requires``: None, or why it cannot run here (io_uring)."""

    @property
    def look(self) -> Look:
        """Its look on every chart: the declared fields, else the defaults described there."""
        return Look(
            colour=self.colour,
            marker=self.marker if self.marker is not None else mechanism_marker(self.mechanism),
            linestyle=(
                self.linestyle if self.linestyle is not None else family_linestyle(self.family)
            ),
            label=self.label if self.label is not None else self.name,
        )

    def max_clients(self, nofile: int) -> int | None:
        """Most clients it holds at once under RLIMIT_NOFILE ``nofile`` when that is not one
        descriptor per client (HAProxy reserves two); None: one per client, bounded by
        ``nofile`` and ``fd_number_limit`` alone."""
        return None

    @property
    def built_in(self) -> bool:
        """Its server is in this project's servers package (a plugin's lives elsewhere)."""
        return self.factory.startswith("servers.")

    def client_capacity(self, nofile: int | None) -> tuple[int, str] | None:
        """Most clients it holds at once under RLIMIT_NOFILE ``nofile`` (None: unlimited) and
        why, or None when only RLIMIT_NOFILE bounds it (one descriptor per client)."""
        caps = []
        if self.fd_number_limit is not None:
            caps.append((
                self.fd_number_limit - SERVER_RESERVED_FDS,
                f"it watches descriptor numbers below {self.fd_number_limit} and keeps "
                f"{SERVER_RESERVED_FDS} of them for itself",
            ))  # fmt: skip
        held = None if nofile is None else self.max_clients(nofile)
        if held is not None:
            per_client = self.descriptors_per_client
            caps.append((held, f"its own limit at RLIMIT_NOFILE {nofile}, "
                               f"{per_client} descriptors per client"))  # fmt: skip
        return min(caps) if caps else None

    def cannot_serve(self, protocol: str, connections: int, nofile: int | None) -> str | None:
        """None when it can serve ``connections`` clients at once over ``protocol`` under
        RLIMIT_NOFILE ``nofile``, else why not (what a run planning it states)."""
        if protocol not in self.protocols:
            return f"it serves {', '.join(self.protocols)}, not {protocol}"
        capacity = self.client_capacity(nofile)
        if capacity is not None and connections > capacity[0]:
            return f"it holds at most {capacity[0]} clients ({capacity[1]})"
        return None

    def unavailable_reason(self) -> str | None:
        """None when this backend can run here, else a sentence naming the cause and remedy."""
        for module in self.requires:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                hint = self.install_hint or f"pip install {module}"
                return (
                    f"backend {self.name!r} needs the {module} module, which cannot be "
                    f"imported ({exc}): {hint}"
                )
        if self.availability is not None:
            module_name, _, attr = self.availability.partition(":")
            return cast(str | None, getattr(importlib.import_module(module_name), attr)())
        return None

    def load_factory(self) -> Callable[..., Any]:
        """The callable named by `factory`; SetupError (cause and remedy) when it cannot load."""
        reason = self.unavailable_reason()
        if reason is not None:
            raise SetupError(reason)
        module_name, sep, attr = self.factory.partition(":")
        if not sep:
            raise SetupError(
                f"backend {self.name!r} declares factory {self.factory!r}: write it as "
                "'module:callable'"
            )
        try:
            return getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise SetupError(
                f"backend {self.name!r}: cannot load its factory {self.factory!r} ({exc}); "
                "fix the declaration or put its module on PYTHONPATH"
            ) from exc


_REGISTRY: dict[str, Backend] = {}
# Modules that register whole families of built-in backends (the C twins...).
BUILTIN_FAMILY_MODULES: tuple[str, ...] = ("servers.c_backends", "servers.haproxy_backends")
_plugins_loaded = False


def register(backend: Backend) -> Backend:
    """Add a backend. Registering an identical declaration again is a no-op."""
    existing = _REGISTRY.get(backend.name)
    if existing is not None and existing != backend:
        raise ValueError(
            f"backend {backend.name!r} is already registered with a different declaration "
            f"({existing.factory}): pick another name"
        )
    _REGISTRY[backend.name] = backend
    return backend


def load_plugins() -> None:
    """Import the modules named in SELECTBENCH_PLUGINS, once per process."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True  # set first: a plugin may itself look backends up
    # Built-in families declared in their own modules, imported here rather than at
    # the top (they import this module: a top-level import would be a cycle).
    for module in BUILTIN_FAMILY_MODULES:
        importlib.import_module(module)
    for module in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(","))):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            _plugins_loaded = False
            raise PluginError(
                f"{PLUGINS_ENV} names the module {module!r}, which cannot be imported ({exc}): "
                f"install it or put its directory on PYTHONPATH, or remove it from {PLUGINS_ENV}"
            ) from exc


def get(name: str) -> Backend:
    """The backend called `name`; UnknownBackend lists the registered names otherwise."""
    load_plugins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownBackend(
            f"unknown backend {name!r}: choose one of {', '.join(_REGISTRY)}"
        ) from None


def names(family: str | None = None) -> tuple[str, ...]:
    """Registered backend names in registration order, optionally of one family."""
    return tuple(b.name for b in all_backends() if family is None or b.family == family)


def all_backends() -> tuple[Backend, ...]:
    """Every registered backend, in registration order."""
    load_plugins()
    return tuple(_REGISTRY.values())


@dataclass(frozen=True)
class Role:
    """Backends picked by what they are declared as (None: any), not by name.

    Presets and scenarios name roles; a run resolves them against the registry when
    it is planned, so a backend registered later (a plugin) joins every role it fits.
    """

    families: tuple[str, ...] | None = None
    mechanisms: tuple[str, ...] | None = None
    fd_limited: bool | None = None
    """True: only backends with a ``fd_number_limit``; False: only those without."""
    edge_triggered: bool | None = None
    excluding: Role | None = None
    """The backends this role admits but ``excluding`` admits are left out."""

    def admits(self, backend: Backend) -> bool:
        return (
            (self.families is None or backend.family in self.families)
            and (self.mechanisms is None or backend.mechanism in self.mechanisms)
            and (
                self.fd_limited is None or self.fd_limited == (backend.fd_number_limit is not None)
            )
            and (self.edge_triggered is None or backend.edge_triggered == self.edge_triggered)
            and (self.excluding is None or not self.excluding.admits(backend))
        )

    def __or__(self, other: Role | Roles) -> Roles:
        return Roles((self,)) | other

    def names(self) -> tuple[str, ...]:
        return Roles((self,)).names()


@dataclass(frozen=True)
class Roles:
    """The backends any of ``members`` admits, in registration order."""

    members: tuple[Role, ...]

    def __or__(self, other: Role | Roles) -> Roles:
        return Roles(self.members + (other.members if isinstance(other, Roles) else (other,)))

    def names(self) -> tuple[str, ...]:
        return tuple(b.name for b in all_backends() if any(r.admits(b) for r in self.members))


EVERY_BACKEND = Role()
PYTHON_LOOP = Role(families=(FAMILY_PYTHON_LOOP,))
C_TWINS = Role(families=(FAMILY_C,))
# A family's backends without the edge-triggered variants: one per readiness mechanism.
PYTHON_MECHANISMS = Role(families=(FAMILY_PYTHON_LOOP,), edge_triggered=False)
C_MECHANISMS = Role(families=(FAMILY_C,), edge_triggered=False)
# The backends whose descriptor numbers are limited (select's FD_SETSIZE), of any family.
FD_LIMITED = Role(fd_limited=True)
# select(2) with no descriptor-number limit (c-select-big: bitmaps sized to RLIMIT_NOFILE
# instead of glibc's fd_set): where FD_SETSIZE's 1,024 lives, measured past it.
SELECT_PAST_FD_SETSIZE = Role(mechanisms=("select", "select-big"), fd_limited=False)


def resolve_roles(value: Any) -> Any:
    """``value`` with every Role or Roles in it (a settings dataclass, the sweeps it
    holds) replaced by the tuple of backend names it stands for now."""
    if isinstance(value, Role | Roles):
        return value.names()
    if isinstance(value, tuple):
        return tuple(resolve_roles(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: resolve_roles(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return dataclasses.replace(value, **changes)
    return value


_UVLOOP_HINT = "pip install uvloop (or pip install -e '.[uvloop]')"

register(Backend(
    name="select", family=FAMILY_PYTHON_LOOP, mechanism="select", wait_instrumented=True,
    fd_number_limit=FD_SETSIZE, colour="#d62728",
    factory="servers.backends.select_backend:make_server",
    description="select(2) in the shared event loop; refuses descriptor numbers >= FD_SETSIZE",
))  # fmt: skip
register(Backend(
    name="poll", family=FAMILY_PYTHON_LOOP, mechanism="poll", wait_instrumented=True,
    fd_number_limit=None, colour="#ff7f0e",
    factory="servers.backends.poll_backend:make_server",
    description="poll(2) in the shared event loop",
))  # fmt: skip
register(Backend(
    name="epoll", family=FAMILY_PYTHON_LOOP, mechanism="epoll", wait_instrumented=True,
    fd_number_limit=None, colour="#1f77b4",
    factory="servers.backends.epoll_backend:make_server",
    description="epoll(7), level-triggered, in the shared event loop",
))  # fmt: skip
register(Backend(
    name="epoll-et", family=FAMILY_PYTHON_LOOP, mechanism="epoll-et", wait_instrumented=True,
    fd_number_limit=None, colour="#17becf", edge_triggered=True,
    factory="servers.backends.epoll_backend:make_server_edge_triggered",
    description="epoll(7), edge-triggered (EPOLLET), in the shared event loop",
))  # fmt: skip
# The io_uring backends' (uring-poll, c-uring-poll) install hint and run-time check.
URING_HINT = "apt-get install gcc python3-dev liburing-dev, then pip install -e . again"
URING_AVAILABILITY = "servers.uring_availability:unavailable_reason"
register(Backend(
    name="uring-poll", family=FAMILY_PYTHON_LOOP, mechanism="uring-poll", wait_instrumented=True,
    fd_number_limit=None, colour="#bcbd22", edge_triggered=True,
    factory="servers.backends.uring_poll_backend:make_server", requires=("servers.c_server",),
    install_hint=URING_HINT, availability=URING_AVAILABILITY,
    description="io_uring multishot poll (edge-triggered) in the shared event loop",
))  # fmt: skip
register(Backend(
    # Its EpollSelector is wrapped to time each select() call (servers.asyncio_server).
    name="asyncio", family=FAMILY_PYTHON_REFERENCE, mechanism="asyncio", wait_instrumented=True,
    fd_number_limit=None, colour="#2ca02c",
    factory="servers.asyncio_server:make_asyncio_server",
    description="asyncio's own event loop (Protocol API) over an EpollSelector",
))  # fmt: skip
register(Backend(
    # libuv waits out of Python's reach: nothing to time.
    name="uvloop", family=FAMILY_PYTHON_REFERENCE, mechanism="uvloop", wait_instrumented=False,
    fd_number_limit=None, colour="#9467bd",
    factory="servers.asyncio_server:make_uvloop_server",
    requires=("uvloop",), install_hint=_UVLOOP_HINT,
    description="the asyncio server on uvloop (libuv)",
))  # fmt: skip
register(Backend(
    # No wait call: the scheduler does the waiting.
    name="threads", family=FAMILY_PYTHON_REFERENCE, mechanism="threads", wait_instrumented=False,
    fd_number_limit=None, colour="#8c564b",
    factory="servers.threaded_server:ThreadedServer",
    description="one blocking thread per connection",
))  # fmt: skip
