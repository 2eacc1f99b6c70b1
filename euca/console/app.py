"""The console's plumbing: one Starlette app under ``/console``, a session per visitor, CSRF on
every form, sign-in with lock-out, the open sign-up page, and the routes to the pages in
``euca.console.views``.

Every page handler is ``async`` on purpose: the services are plain synchronous code that one request
runs to its commit before the next starts, as the API runs them, so nothing here goes to a thread
pool except password hashing, which touches no shared state.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import Receive, Scope, Send

from euca.console.calls import Authorize, Ec2Calls, Handler, Parse
from euca.console.charts import Usage
from euca.console.lockout import Lockout
from euca.console.sessions import COOKIE, LIFETIME, Session, Signer, load_key, password_mark
from euca.console.signups import SignupError, Signups
from euca.core.errors import ApiError
from euca.iam import check_password, hash_password
from euca.services.accounts import Account, User
from euca.services.cloud import Cloud
from euca.services.common import ADMIN, Caller
from euca.walrus import Walrus

PREFIX = "/console"
MAX_FORM = 64 * 1024
_HERE = Path(__file__).parent
_HEADERS = {
    # Everything the pages need comes from here; inline SVG is markup, not script.
    "content-security-policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def is_console_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def create_console(cloud: Cloud, *, authorize: Authorize, actions: Mapping[str, Handler], model: Any,
                   parse: Parse, source_ip: Any, walrus: Walrus | None, signup: bool = True) -> Console:
    """What ``create_app(..., console=create_console)`` calls with its EC2 pipeline's pieces; the
    signing key lives in the data directory beside Walrus's."""
    calls = Ec2Calls(cloud, authorize, actions, model, parse, source_ip)
    return Console(cloud, calls, walrus.blobs.root.parent if walrus is not None else None, walrus, signup)


class Refused(Exception):
    """A request the console answers with an error page and this status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class Visit:
    """One request to the console: who (if anyone) is signed in, and the form it posted."""

    request: Request
    session: Session
    caller: Caller | None
    source: str
    form: dict[str, str]

    @property
    def who(self) -> Caller:
        assert self.caller is not None
        return self.caller

    def field(self, name: str, default: str = "") -> str:
        return self.form.get(name, default).strip()


Need = Literal["nobody", "user", "admin"]
View = Callable[["Console", Visit], Awaitable[Response]]


class Console:
    """The console as an ASGI app, with what it keeps between requests (the signing key, the lock-out
    counters, the usage samples)."""

    def __init__(self, cloud: Cloud, calls: Ec2Calls, data_dir: Path | None, walrus: Walrus | None = None,
                 signup: bool = True, clock: Callable[[], float] = time.time) -> None:
        """``signup``: the open sign-up page (on in the box, as Eucalyptus 1.x had it)."""
        from euca.console import views

        self.cloud, self.calls, self.data_dir, self.walrus = cloud, calls, data_dir, walrus
        self.signup_open = signup
        self.signer = Signer(load_key(data_dir))
        self.lockout = Lockout(clock)
        self.signups = Signups(cloud.store, cloud.accounts)
        self.usage = Usage(cloud.cc, clock=clock)
        self.templates = Jinja2Templates(directory=str(_HERE / "templates"))
        self.templates.env.filters["when"] = _when
        self._dummy_hash = ""

        def route(path: str, view: View, need: Need = "user", methods: tuple[str, ...] = ("GET",)) -> Route:
            async def endpoint(request: Request) -> Response:
                return await self._handle(request, view, need)
            return Route(path, endpoint, methods=list(methods))

        post = ("POST",)
        routes = [
            route("/", views.home, "nobody"),
            route("/signin", signin_page, "nobody"),
            route("/signin", signin, "nobody", post),
            route("/signout", signout, "nobody", post),
            route("/signup", signup_page, "nobody"),
            route("/signup", signup_post, "nobody", post),
            route("/password", password_page),
            route("/password", password_post, "user", post),
            route("/dashboard", views.dashboard),
            route("/launch", views.launch_page),
            route("/launch", views.launch, "user", post),
            route("/instances/{instance_id}/terminate", views.terminate, "user", post),
            route("/instances/{instance_id}/reboot", views.reboot, "user", post),
            route("/instances/{instance_id}/output", views.console_output),
            route("/keypairs", views.create_keypair, "user", post),
            route("/keypairs/{name}/delete", views.delete_keypair, "user", post),
            route("/groups", views.create_group, "user", post),
            route("/groups/{group_id}", views.group_page),
            route("/groups/{group_id}/delete", views.delete_group, "user", post),
            route("/groups/{group_id}/rules", views.add_rule, "user", post),
            route("/groups/{group_id}/rules/{rule_id}/delete", views.remove_rule, "user", post),
            route("/addresses", views.allocate_address, "user", post),
            route("/addresses/{ip}/associate", views.associate_address, "user", post),
            route("/addresses/{ip}/disassociate", views.disassociate_address, "user", post),
            route("/addresses/{ip}/release", views.release_address, "user", post),
            route("/credentials", views.credentials, "user", post),
            route("/admin", views.admin, "admin"),
            route("/admin/signups/{request_id}/approve", views.approve, "admin", post),
            route("/admin/signups/{request_id}/reject", views.reject, "admin", post),
            Mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static"),
        ]
        self.app = Starlette(routes=[Mount(PREFIX, routes=routes)])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == PREFIX:
            await RedirectResponse(PREFIX + "/", 303)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def sample(self) -> None:
        """The housekeeping tick's call: keep the cluster's use for the administrator's plot."""
        self.usage.sample()

    # --- every request ------------------------------------------------------------------------------

    async def _handle(self, request: Request, view: View, need: Need) -> Response:
        session = self.signer.load(request.cookies.get(COOKIE))
        client = request.client
        visit = Visit(request, session, None, client.host if client else "", {})
        try:
            self.cloud.refresh()
            visit.caller = self._caller(session)
            if request.method == "POST":
                visit.form = await _form(request)
                if not session.csrf_ok(visit.form.get("csrf", "")):
                    raise Refused(403, "This form's security token does not match your session (it expired, or the "
                                  "form did not come from this console). Reload the page and try again.")
            if need != "nobody" and visit.caller is None:
                if request.method == "GET":
                    return self.finish(visit, RedirectResponse(PREFIX + "/signin", 303))
                raise Refused(401, "Sign in first.")
            if need == "admin" and not visit.who.admin:
                raise Refused(403, "Only the cloud's administrator may see this page.")
            return await view(self, visit)
        except Refused as exc:
            return self.render(visit, "error.html", exc.status, message=exc.message)
        except (ApiError, SignupError) as exc:
            if request.method == "POST" and visit.caller is not None:
                return self.back(visit, "error", _message(exc))
            return self.render(visit, "error.html", _status(exc), message=_message(exc))

    def _caller(self, session: Session) -> Caller | None:
        """The signed-in user, if the session names one whose password is still the one it signed in with."""
        if not session.signed_in:
            return None
        account = self.cloud.accounts.get(session.account)
        user = self._user(account, session.user)
        if account is None or user is None or not user.login or password_mark(user.login["hash"]) != session.mark:
            session.account = session.user = ""
            return None
        self.cloud.groups.ensure_default(account.name)
        return Caller(account.name, account.account_id, account.admin and user.name == ADMIN, user.name)

    def _user(self, account: Account | None, name: str) -> User | None:
        if account is None:
            return None
        try:
            return self.cloud.accounts.user(account.name, name)
        except ApiError:
            return None

    def account_named(self, text: str) -> Account | None:
        """The account a sign-in names: by alias, by 12-digit id, or by name."""
        text = text.strip().lower()
        accounts = self.cloud.accounts
        for account in accounts.all():
            if account.alias == text:
                return account
        if text.isdigit() and len(text) == 12:
            return accounts.by_id(text)
        return accounts.get(text)

    # --- answers ------------------------------------------------------------------------------------

    def render(self, visit: Visit, template: str, status: int = 200, **context: Any) -> Response:
        flash, visit.session.flash = visit.session.flash, None
        context |= {"prefix": PREFIX, "csrf": visit.session.csrf, "caller": visit.caller, "flash": flash,
                    "signup_open": self.signup_open, "region": self.cloud.zones.region}
        response = self.templates.TemplateResponse(visit.request, template, context, status_code=status)
        return self.finish(visit, response)

    def back(self, visit: Visit, kind: str, text: str, to: str = "") -> Response:
        """Redirect after a POST (to the form's ``back`` page, within the console), with a message."""
        visit.session.flash = [kind, text[:500]]
        target = to or visit.form.get("back", "")
        if not target.startswith(PREFIX + "/") or "//" in target or "\\" in target or not target.isprintable():
            target = PREFIX + "/dashboard"
        return self.finish(visit, RedirectResponse(target, 303))

    def finish(self, visit: Visit, response: Response) -> Response:
        response.set_cookie(COOKIE, self.signer.dump(visit.session), max_age=int(LIFETIME), path=PREFIX,
                            httponly=True, samesite="strict", secure=visit.request.url.scheme == "https")
        for name, value in _HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    async def dummy_hash(self) -> str:
        """A hash to verify against when the user does not exist, so that takes as long as a wrong password."""
        if not self._dummy_hash:
            self._dummy_hash = await run_in_threadpool(hash_password, "not a password of anyone's")
        return self._dummy_hash


async def _form(request: Request) -> dict[str, str]:
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise Refused(415, "Forms are sent as application/x-www-form-urlencoded.")
    size = request.headers.get("content-length", "0")
    if not size.isdigit() or int(size) > MAX_FORM:
        raise Refused(413, "The form is too large.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise Refused(413, "The form is too large.")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=200, errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise Refused(400, "The form is not valid form encoding.") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        form.setdefault(key, value)
    return form


def _message(exc: Exception) -> str:
    if isinstance(exc, ApiError):
        return f"{exc.code}: {exc.message}"
    return str(exc)


def _status(exc: Exception) -> int:
    if isinstance(exc, ApiError):
        if exc.code.endswith(".NotFound") or exc.code in ("NoSuchEntity", "InvalidGroup.NotFound"):
            return 404
        if exc.code in ("UnauthorizedOperation", "AccessDenied", "AuthFailure"):
            return 403
        return exc.status
    return 400


def _when(value: Any) -> str:
    """A timestamp (seconds, or a datetime) as the pages show it."""
    if hasattr(value, "strftime"):
        return str(value.strftime("%Y-%m-%d %H:%M:%S"))
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(value)))
    except (TypeError, ValueError):
        return ""


# --- signing in and out, signing up ---------------------------------------------------------------------

async def signin_page(console: Console, visit: Visit) -> Response:
    if visit.caller is not None:
        return console.finish(visit, RedirectResponse(PREFIX + "/dashboard", 303))
    return console.render(visit, "signin.html")


async def signin(console: Console, visit: Visit) -> Response:
    typed_account, typed_user = visit.field("account"), visit.field("user")
    password = visit.form.get("password", "")
    account = console.account_named(typed_account)
    user = console._user(account, typed_user) if typed_user else None
    lockout = console.lockout
    user_key = lockout.user_key(account.name if account else typed_account, user.name if user else typed_user)
    keys = (user_key, lockout.address_key(visit.source))
    wait = lockout.locked(*keys)
    if wait > 0:
        return console.render(visit, "signin.html", 429, error=f"Too many failed sign-ins. Try again in "
                              f"{int(wait // 60) + 1} minutes.", account=typed_account, user=typed_user)
    stored = user.login.get("hash", "") if user is not None and user.login else ""
    good = await run_in_threadpool(check_password, stored or await console.dummy_hash(), password)
    if not (good and stored and account is not None and user is not None):
        lockout.failed(*keys)
        return console.render(visit, "signin.html", 401, error="The account, user name or password is not right.",
                              account=typed_account, user=typed_user)
    lockout.succeeded(user_key)
    # a new session (and CSRF token) at sign-in, so a token seen before cannot be replayed after it
    visit.session = Session(account=account.name, user=user.name, mark=password_mark(stored), issued=time.time())
    assert user.login is not None
    target = "/password" if user.login.get("reset") else "/dashboard"
    return console.finish(visit, RedirectResponse(PREFIX + target, 303))


async def signout(console: Console, visit: Visit) -> Response:
    visit.session = Session(flash=["ok", "Signed out."])
    return console.finish(visit, RedirectResponse(PREFIX + "/signin", 303))


async def signup_page(console: Console, visit: Visit) -> Response:
    if not console.signup_open:
        raise Refused(404, "Sign-up is closed on this cloud: ask its administrator for an account.")
    return console.render(visit, "signup.html")


async def signup_post(console: Console, visit: Visit) -> Response:
    if not console.signup_open:
        raise Refused(404, "Sign-up is closed on this cloud: ask its administrator for an account.")
    name, email, account = visit.field("name"), visit.field("email"), visit.field("account").lower()
    password = visit.form.get("password", "")
    again = dict(name=name, email=email, account=account)
    try:
        console.signups.check(name, email, account)
        if password != visit.form.get("password2", ""):
            raise SignupError("The two passwords differ")
        password_hash = await run_in_threadpool(hash_password, password)
        console.signups.request(name, email, account, password_hash, visit.source)
    except (SignupError, ApiError) as exc:
        return console.render(visit, "signup.html", 400, error=_message(exc).removeprefix("PasswordPolicyViolation: "),
                              **again)
    return console.render(visit, "signup_done.html", account=account)


async def password_page(console: Console, visit: Visit) -> Response:
    user = console.cloud.accounts.user(visit.who.account, visit.who.user)
    return console.render(visit, "password.html", reset=bool(user.login and user.login.get("reset")))


async def password_post(console: Console, visit: Visit) -> Response:
    accounts = console.cloud.accounts
    user = accounts.user(visit.who.account, visit.who.user)
    stored = user.login.get("hash", "") if user.login else ""
    reset = bool(user.login and user.login.get("reset"))
    if not await run_in_threadpool(check_password, stored, visit.form.get("current", "")):
        return console.render(visit, "password.html", 400, reset=reset, error="The current password is not right.")
    new = visit.form.get("password", "")
    if new != visit.form.get("password2", ""):
        return console.render(visit, "password.html", 400, reset=reset, error="The two new passwords differ.")
    try:
        new_hash = await run_in_threadpool(hash_password, new)
    except ApiError as exc:
        return console.render(visit, "password.html", 400, reset=reset, error=exc.message)
    accounts.set_login(visit.who.account, user.name, new_hash, reset=False, create=False)
    visit.session.mark = password_mark(new_hash)
    return console.back(visit, "ok", "Password changed.", PREFIX + "/dashboard")
