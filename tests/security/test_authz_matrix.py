"""Who may call what: every HTTP endpoint of the app against every kind of caller.

``MATRIX`` is the one table: (method, path) -> what each role gets. ``ok`` means allowed
(anything but 401, 403, 404 or a 5xx: a 409 or 422 about the request itself is still
allowed); a number is the denial expected, exactly: 401 without a usable token, 403 for a
role that may not do this, 404 where the design is "it does not exist for you" (another
merchant's product, another buyer's order), so that ids cannot be probed.

Each cell runs against the real app with resources made for it (a live stream of merchant
M hosted by H, a product of M, a card order of viewer V with a parcel, a pending
invitation...), so what one cell changes (a product deleted, a stream ended) cannot decide
another. A new endpoint fails ``test_every_route_is_in_the_matrix`` until it is classified.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from livecommerce.accounts.service import create_admin
from livecommerce.db import session_scope
from livecommerce.fulfillment import service as fulfillment
from livecommerce.logistics.network import load_network
from tests.fixtures.database import TestDatabase
from tests.fixtures.factories import PASSWORD, account, login, product_body
from tests.fixtures.hosts import link_host
from tests.orders.shop import ALMATY, stocked_product

ROLES = (
    "anonymous",  # no token at all
    "guest",  # a guest token: watches, never buys
    "viewer",  # V: the buyer of the order
    "other_viewer",  # OV
    "host",  # H: streams for M, hosts the stream
    "unlinked_host",  # UH: streams for nobody
    "other_host",  # OH: streams for OM
    "merchant",  # M: owns the product, the stream, the order's goods
    "other_merchant",  # OM
    "admin",
)
OK = "ok"
Expect = dict[str, str | int]
Scene = Any  # the ``Scene`` below; rows are declared before it
Maker = Callable[[Scene], Awaitable[Any]]


def expect(default: str | int, *, anonymous: str | int = 401, **roles: str | int) -> Expect:
    """Every role ``default`` unless named; anonymous callers 401 unless said otherwise."""
    unknown = set(roles) - set(ROLES)
    assert not unknown, unknown
    table: Expect = {role: default for role in ROLES}
    table["anonymous"] = anonymous
    table.update(roles)
    return table


EVERYONE = expect(OK, anonymous=OK)
SIGNED_IN = expect(OK)  # a guest too
USERS = expect(OK, guest=403)  # any account, not a guest
MERCHANTS = expect(403, merchant=OK, other_merchant=OK)
HOSTS = expect(403, host=OK, unlinked_host=OK, other_host=OK)
# M's product (and its stock): M and admins write it; another merchant does not see it.
PRODUCT_WRITERS = expect(403, merchant=OK, admin=OK, other_merchant=404)
# M's stream hosted by H: H while linked, M and admins drive it.
DRIVERS = expect(403, host=OK, merchant=OK, admin=OK)
# V's order: the buyer, the merchant and admins read it; to anyone else it does not exist.
ORDER_READERS = expect(404, guest=403, viewer=OK, merchant=OK, admin=OK)
PARCEL_READERS = expect(403, merchant=OK, other_merchant=OK, admin=OK)


@dataclass(frozen=True)
class Row:
    expected: Expect
    json: Maker | None = None
    params: Maker | None = None
    data: Maker | None = None
    files: Maker | None = None
    # The call signs the caller out (``signs_out``) or changes who streams for whom
    # (``relinks``): put back as it was after each cell.
    signs_out: bool = False
    relinks: bool = False


def const(value: Any) -> Maker:
    async def make(_scene: Scene) -> Any:
        return value

    return make


_emails = itertools.count(1)


async def _new_account(_scene: Scene) -> dict[str, Any]:
    return {
        "email": f"matrix-new{next(_emails)}@example.kz",
        "password": PASSWORD,
        "display_name": "New",
        "role": "viewer",
    }


async def _sign_in(scene: Scene) -> dict[str, str]:
    return {"username": scene.emails["viewer"], "password": PASSWORD}


async def _new_stream(scene: Scene) -> dict[str, Any]:
    return {
        "title": {"ru": "Эфир"},
        "merchant_id": scene.merchant_id,
        "host_id": scene.ids["host"],
    }


async def _pin(scene: Scene) -> dict[str, Any]:
    return {"product_id": (await scene.product())["id"]}


async def _sale(scene: Scene) -> dict[str, Any]:
    return {
        "product_id": (await scene.product())["id"],
        "price": {"amount": "1.00", "currency": "CNY"},
        "quantity": 2,
        "duration_s": 600,
    }


async def _mute(scene: Scene) -> dict[str, Any]:
    return {"user_id": scene.ids["other_viewer"], "action": "mute"}


async def _basket(scene: Scene) -> dict[str, Any]:
    return {
        "items": [{"product_id": (await scene.product())["id"], "quantity": 1}],
        "ship_to": ALMATY,
        "payment_method": "cod",
    }


async def _confirm(scene: Scene) -> dict[str, Any]:
    payment = await scene.payment()
    return {"client_secret": payment["client_secret"], "card_number": "4242 4242 4242 4242"}


async def _csv(_scene: Scene) -> dict[str, Any]:
    body = (
        "sku,title_ru,price,currency,weight_grams,hs_code,origin_country\n"
        f"CSV-{next(_emails)},Крем,120.00,CNY,180,330499,CN\n"
    )
    return {"file": ("products.csv", body.encode(), "text/csv")}


async def _new_product(_scene: Scene) -> dict[str, Any]:
    return product_body()


async def _manifest(_scene: Scene) -> dict[str, str]:
    return {"warehouse": "KZALA", "date": date.today().isoformat()}


MATRIX: dict[tuple[str, str], Row] = {
    # --- documentation, pages, health: public by design ---------------------------------
    ("GET", "/openapi.json"): Row(EVERYONE),
    ("GET", "/docs"): Row(EVERYONE),
    ("GET", "/docs/oauth2-redirect"): Row(EVERYONE),
    ("GET", "/redoc"): Row(EVERYONE),
    ("GET", "/"): Row(EVERYONE),
    ("GET", "/live/{stream_id:int}"): Row(EVERYONE),
    ("GET", "/host"): Row(EVERYONE),  # the page; what it shows comes from the API
    ("GET", "/merchant"): Row(EVERYONE),
    ("GET", "/web/i18n/{locale}.json"): Row(EVERYONE),
    ("GET", "/healthz"): Row(EVERYONE),
    ("GET", "/readyz"): Row(EVERYONE),
    # --- accounts -------------------------------------------------------------------------
    ("POST", "/api/v1/auth/register"): Row(EVERYONE, json=_new_account),
    ("POST", "/api/v1/auth/token"): Row(EVERYONE, data=_sign_in),
    ("POST", "/api/v1/auth/guest"): Row(EVERYONE),
    ("POST", "/api/v1/auth/logout"): Row(USERS, signs_out=True),
    ("GET", "/api/v1/me"): Row(SIGNED_IN),
    ("PATCH", "/api/v1/me"): Row(USERS, json=const({"display_name": "Renamed"})),
    ("POST", "/api/v1/me/password"): Row(
        USERS,
        json=const({"current_password": PASSWORD, "new_password": PASSWORD}),
        signs_out=True,
    ),
    ("GET", "/api/v1/me/notifications"): Row(USERS),
    ("GET", "/api/v1/merchants/me/hosts"): Row(MERCHANTS),
    ("POST", "/api/v1/merchants/me/hosts"): Row(
        MERCHANTS, json=const({"email": "invited@example.kz"}), relinks=True
    ),
    ("GET", "/api/v1/merchants/me/invitations"): Row(MERCHANTS),
    ("DELETE", "/api/v1/merchants/me/invitations/{invitation_id}"): Row(
        expect(403, merchant=OK, other_merchant=404), relinks=True
    ),
    ("DELETE", "/api/v1/merchants/me/hosts/{host_id}"): Row(
        expect(403, merchant=OK, other_merchant=404), relinks=True
    ),
    ("GET", "/api/v1/hosts/me/merchants"): Row(HOSTS),
    # M invited UH; H already streams for M (accepting again is a no-op); OH was not invited.
    ("POST", "/api/v1/hosts/me/merchants/{merchant_id}/accept"): Row(
        expect(403, host=OK, unlinked_host=OK, other_host=404), relinks=True
    ),
    ("POST", "/api/v1/hosts/me/merchants/{merchant_id}/decline"): Row(
        expect(403, host=404, unlinked_host=OK, other_host=404), relinks=True
    ),
    ("DELETE", "/api/v1/hosts/me/merchants/{merchant_id}"): Row(
        expect(403, host=OK, unlinked_host=404, other_host=404), relinks=True
    ),
    # --- catalog, stock, rates ------------------------------------------------------------
    ("GET", "/api/v1/products"): Row(EVERYONE),
    # Another merchant's product answers 404 to a merchant (README, "Merchants").
    ("GET", "/api/v1/products/{product_id}"): Row(expect(OK, anonymous=OK, other_merchant=404)),
    ("POST", "/api/v1/products"): Row(MERCHANTS, json=_new_product),
    ("PATCH", "/api/v1/products/{product_id}"): Row(
        PRODUCT_WRITERS, json=const({"weight_grams": 200})
    ),
    ("DELETE", "/api/v1/products/{product_id}"): Row(PRODUCT_WRITERS),
    ("PUT", "/api/v1/products/{product_id}/stock/{warehouse_code}"): Row(
        PRODUCT_WRITERS, json=const({"quantity": 7})
    ),
    ("POST", "/api/v1/products/import"): Row(MERCHANTS, files=_csv),
    ("GET", "/api/v1/warehouses"): Row(EVERYONE),
    ("GET", "/api/v1/rates"): Row(EVERYONE),
    ("POST", "/api/v1/rates"): Row(
        expect(403, admin=OK),
        json=const(
            {
                "base": "EUR",
                "quote": "KZT",
                "rate": "600.5",
                "source": "test",
                "as_of": "2026-11-23T09:00:00+05:00",
            }
        ),
    ),
    # --- streams --------------------------------------------------------------------------
    # A stream of M with H as host: M, H (linked) and admins; never OM, OH or UH.
    ("POST", "/api/v1/streams"): Row(DRIVERS, json=_new_stream),
    ("GET", "/api/v1/streams"): Row(EVERYONE),
    ("GET", "/api/v1/streams/{stream_id}"): Row(EVERYONE),
    ("POST", "/api/v1/streams/{stream_id}/start"): Row(DRIVERS),
    ("POST", "/api/v1/streams/{stream_id}/end"): Row(DRIVERS),
    ("POST", "/api/v1/streams/{stream_id}/pins"): Row(DRIVERS, json=_pin),
    ("POST", "/api/v1/streams/{stream_id}/announcements"): Row(
        DRIVERS, json=const({"text": {"ru": "Скидки!"}})
    ),
    ("POST", "/api/v1/streams/{stream_id}/flash-sales"): Row(DRIVERS, json=_sale),
    ("POST", "/api/v1/streams/{stream_id}/flash-sales/{sale_id}/end"): Row(DRIVERS),
    ("PUT", "/api/v1/streams/{stream_id}/blocked-words"): Row(
        DRIVERS, json=const({"words": ["spam"]})
    ),
    ("POST", "/api/v1/streams/{stream_id}/moderation"): Row(DRIVERS, json=_mute),
    ("DELETE", "/api/v1/streams/{stream_id}/chat/{seq}"): Row(DRIVERS),
    # --- orders and payments --------------------------------------------------------------
    ("POST", "/api/v1/quotes"): Row(EVERYONE, json=_basket),
    ("GET", "/api/v1/products/{product_id}/delivery-estimate"): Row(
        EVERYONE, params=const({"country": "KZ", "city": "Almaty"})
    ),
    ("POST", "/api/v1/orders"): Row(USERS, json=_basket),
    ("GET", "/api/v1/orders"): Row(USERS),  # each sees their own
    ("GET", "/api/v1/orders/{order_id}"): Row(ORDER_READERS),
    ("POST", "/api/v1/orders/{order_id}/cancel"): Row(ORDER_READERS),
    # Only the buyer pays.
    ("POST", "/api/v1/orders/{order_id}/payments"): Row(expect(404, guest=403, viewer=OK)),
    ("GET", "/api/v1/orders/{order_id}/payments"): Row(ORDER_READERS),
    # The provider's call, authenticated by its signature: a bearer token grants nothing.
    ("POST", "/api/v1/payments/webhooks/{provider_name}"): Row(expect(400, anonymous=400)),
    # The sandbox provider's own endpoints (its card form), not the API's: the intent's
    # client secret is what admits a confirmation, whoever sends it.
    ("POST", "/sandbox/payments/{intent_id}/confirm"): Row(EVERYONE, json=_confirm),
    ("GET", "/sandbox/payments/{intent_id}/events"): Row(EVERYONE),
    ("POST", "/sandbox/payments/events/{event_id}/resend"): Row(EVERYONE),
    # --- fulfilment -----------------------------------------------------------------------
    ("GET", "/api/v1/orders/{order_id}/tracking"): Row(ORDER_READERS),
    ("GET", "/api/v1/shipments"): Row(PARCEL_READERS),
    ("GET", "/api/v1/shipments/manifest.csv"): Row(PARCEL_READERS, params=_manifest),
}

# Not HTTP endpoints: sockets authorise in their handshake (tests/rooms, tests/notifications)
# and static files are public.
NOT_HTTP = {"/ws/streams/{stream_id:int}", "/ws/me", "/static"}


@dataclass
class Scene:
    """The cast (signed in once per test) and, per cell, the resources its path names."""

    app: FastAPI
    client: httpx.AsyncClient
    headers: dict[str, dict[str, str]]
    ids: dict[str, int]
    emails: dict[str, str]
    merchant_id: int
    other_merchant_id: int
    made: dict[str, Any] = field(default_factory=dict)

    def as_(self, role: str) -> dict[str, str]:
        return self.headers[role]

    async def _once(self, name: str, make: Callable[[], Awaitable[Any]]) -> Any:
        if name not in self.made:
            self.made[name] = await make()
        return self.made[name]

    async def product(self) -> dict[str, Any]:
        return await self._once(
            "product", lambda: stocked_product(self.client, self.as_("merchant"), KZALA=20)
        )

    async def stream(self, *, live: bool = True) -> int:
        async def make() -> int:
            created = await self.client.post(
                "/api/v1/streams",
                json={"title": {"ru": "Эфир"}, "host_id": self.ids["host"]},
                headers=self.as_("merchant"),
            )
            assert created.status_code == 201, created.text
            sid: int = created.json()["id"]
            if live:
                started = await self.client.post(
                    f"/api/v1/streams/{sid}/start", headers=self.as_("host")
                )
                assert started.status_code == 200, started.text
            return sid

        return int(await self._once(f"stream-{live}", make))

    async def sale(self) -> int:
        async def make() -> int:
            sid = await self.stream()
            started = await self.client.post(
                f"/api/v1/streams/{sid}/flash-sales",
                json=await _sale(self),
                headers=self.as_("host"),
            )
            assert started.status_code == 201, started.text
            return int(started.json()["id"])

        return int(await self._once("sale", make))

    async def order(self) -> int:
        """V's card order of M's product, with its parcel made."""

        async def make() -> int:
            body = {**await _basket(self), "payment_method": "card"}
            placed = await self.client.post("/api/v1/orders", json=body, headers=self.as_("viewer"))
            assert placed.status_code == 201, placed.text
            oid = int(placed.json()["id"])
            async with session_scope(self.app.state.sessions) as session:
                await fulfillment.create_shipments(
                    session=session, network=load_network(), order_id=oid
                )
            return oid

        return int(await self._once("order", make))

    async def payment(self) -> dict[str, Any]:
        async def make() -> dict[str, Any]:
            oid = await self.order()
            started = await self.client.post(
                f"/api/v1/orders/{oid}/payments", headers=self.as_("viewer")
            )
            assert started.status_code == 201, started.text
            payment: dict[str, Any] = started.json()
            return payment

        result: dict[str, Any] = await self._once("payment", make)
        return result

    async def event(self) -> str:
        async def make() -> str:
            payment = await self.payment()
            confirmed = await self.client.post(payment["confirm_url"], json=await _confirm(self))
            assert confirmed.status_code == 200, confirmed.text
            events = await self.client.get(f"/sandbox/payments/{payment['intent_id']}/events")
            return str(events.json()[0]["id"])

        return str(await self._once("event", make))

    async def invitation(self) -> int:
        async def make() -> int:
            invited = await self.client.post(
                "/api/v1/merchants/me/hosts",
                json={"email": f"invitee{next(_emails)}@example.kz"},
                headers=self.as_("merchant"),
            )
            assert invited.status_code == 201, invited.text
            return int(invited.json()["id"])

        return int(await self._once("invitation", make))

    async def invite_unlinked_host(self) -> None:
        invited = await self.client.post(
            "/api/v1/merchants/me/hosts",
            json={"email": self.emails["unlinked_host"]},
            headers=self.as_("merchant"),
        )
        assert invited.status_code == 201, invited.text

    async def value(self, method: str, path: str, name: str) -> Any:
        if name == "product_id":
            return (await self.product())["id"]
        if name == "stream_id":
            return await self.stream(live=not path.endswith("/start"))
        if name == "sale_id":
            return await self.sale()
        if name == "order_id":
            return await self.order()
        if name == "intent_id":
            return (await self.payment())["intent_id"]
        if name == "event_id":
            return await self.event()
        if name == "invitation_id":
            return await self.invitation()
        if name == "merchant_id":
            if path.endswith(("/accept", "/decline")):
                await self.invite_unlinked_host()
            return self.merchant_id
        fixed = {
            "host_id": self.ids["host"],
            "seq": 1,
            "warehouse_code": "KZALA",
            "provider_name": "sandbox",
            "locale": "ru",
        }
        return fixed[name]

    async def sign_in_again(self, role: str) -> None:
        if role in self.emails:
            self.headers[role] = await login(self.client, self.emails[role])

    async def relink(self) -> None:
        """The links as they started: H and OH linked, UH linked to nobody, no invitation
        waiting."""
        await link_host(self.client, self.as_("merchant"), self._user("host"), self.as_("host"))
        await link_host(
            self.client,
            self.as_("other_merchant"),
            self._user("other_host"),
            self.as_("other_host"),
        )
        for mid in (self.merchant_id, self.other_merchant_id):
            await self.client.delete(
                f"/api/v1/hosts/me/merchants/{mid}", headers=self.as_("unlinked_host")
            )
        for merchant in ("merchant", "other_merchant"):
            pending = await self.client.get(
                "/api/v1/merchants/me/invitations", headers=self.as_(merchant)
            )
            for invitation in pending.json():
                await self.client.delete(
                    f"/api/v1/merchants/me/invitations/{invitation['id']}",
                    headers=self.as_(merchant),
                )

    def _user(self, role: str) -> dict[str, Any]:
        return {"id": self.ids[role], "email": self.emails[role]}


async def cast(app: FastAPI, client: httpx.AsyncClient) -> Scene:
    headers: dict[str, dict[str, str]] = {"anonymous": {}}
    guest = (await client.post("/api/v1/auth/guest")).json()["access_token"]
    headers["guest"] = {"Authorization": f"Bearer {guest}"}
    ids: dict[str, int] = {}
    emails: dict[str, str] = {}
    profiles: dict[str, dict[str, Any]] = {}
    kinds = {
        "viewer": "viewer",
        "other_viewer": "viewer",
        "host": "host",
        "unlinked_host": "host",
        "other_host": "host",
        "merchant": "merchant",
        "other_merchant": "merchant",
    }
    for role, kind in kinds.items():
        profiles[role], headers[role] = await account(client, role=kind)
    email = f"matrix-admin{next(_emails)}@example.kz"
    async with session_scope(app.state.sessions) as session:
        admin = await create_admin(
            session=session, email=email, password=PASSWORD, display_name="Admin"
        )
        profiles["admin"] = {"id": admin.id, "email": email}
    headers["admin"] = await login(client, email)
    for role, profile in profiles.items():
        ids[role], emails[role] = int(profile["id"]), str(profile["email"])
    await link_host(client, headers["merchant"], profiles["host"], headers["host"])
    await link_host(
        client, headers["other_merchant"], profiles["other_host"], headers["other_host"]
    )
    return Scene(
        app,
        client,
        headers,
        ids,
        emails,
        merchant_id=int(profiles["merchant"]["merchant"]["id"]),
        other_merchant_id=int(profiles["other_merchant"]["merchant"]["id"]),
    )


PARAM = re.compile(r"{(\w+)(?::\w+)?}")


async def call(scene: Scene, method: str, path: str, row: Row, role: str) -> httpx.Response:
    scene.made = {}
    url = path
    for name in PARAM.findall(path):
        value = await scene.value(method, path, name)
        url = PARAM.sub(str(value), url, count=1)
    return await scene.client.request(
        method,
        url,
        headers=scene.as_(role),
        json=await row.json(scene) if row.json else None,
        params=await row.params(scene) if row.params else None,
        data=await row.data(scene) if row.data else None,
        files=await row.files(scene) if row.files else None,
    )


def verdict(expected: str | int, status: int) -> bool:
    if expected == OK:
        return status not in (401, 403, 404) and status < 500
    return status == expected


async def test_every_cell_of_the_matrix(
    app: FastAPI, client: httpx.AsyncClient, database: TestDatabase
) -> None:
    """Every role gets, on every endpoint, what the matrix says: allowed or the denial."""
    if database.backend != "sqlite":
        # Authorisation is decided in Python, the same on both databases; SQLite alone
        # keeps this long table to one run.
        pytest.skip("the matrix runs on SQLite")
    scene = await cast(app, client)
    wrong = []
    for (method, path), row in MATRIX.items():
        for role in ROLES:
            response = await call(scene, method, path, row, role)
            if not verdict(row.expected[role], response.status_code):
                wrong.append(
                    f"{method} {path} as {role}: expected {row.expected[role]},"
                    f" got {response.status_code} {response.text[:160]}"
                )
            if row.signs_out:
                await scene.sign_in_again(role)
            if row.relinks:
                await scene.relink()
    assert not wrong, "\n".join(wrong)


def test_every_route_is_in_the_matrix(app: FastAPI) -> None:
    """A route missing from the matrix (or a row for a route that is gone) fails here:
    every endpoint is classified for every role before it ships."""
    routes: set[tuple[str, str]] = set()
    sockets: set[str] = set()
    for route in iter_route_contexts(app.router.routes):
        methods = getattr(route, "methods", None)
        if methods:
            # HEAD is answered wherever GET is, by the same handler.
            routes.update((m, route.path) for m in methods if m != "HEAD")
        else:
            sockets.add(route.path)
    assert routes - set(MATRIX) == set(), "classify these routes in MATRIX"
    assert set(MATRIX) - routes == set(), "these MATRIX rows name no route"
    assert sockets == NOT_HTTP
    assert all(set(row.expected) == set(ROLES) for row in MATRIX.values())
