"""A merchant invites a host by email; the host streams for it only once they accept."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from livecommerce.accounts import service as accounts
from livecommerce.db import session_scope
from livecommerce.demo.seed import DEMO_ACCOUNTS, seed_demo
from tests.fixtures.factories import account, login, register
from tests.fixtures.hosts import link_host

TITLE = {"ru": "Вечерний эфир", "kk": "Кешкі эфир", "uz": "Kechki efir"}


async def test_an_invitation_waits_for_the_host_to_accept(client: httpx.AsyncClient) -> None:
    """Invited is pending: the merchant cannot put the host on a stream, nor the host stream
    for the merchant, until the host accepts; then both can."""
    merchant, mh = await account(client, role="merchant")
    merchant_id = merchant["merchant"]["id"]
    host, hh = await account(client, role="host")
    invited = await client.post(
        "/api/v1/merchants/me/hosts", json={"email": host["email"]}, headers=mh
    )
    assert invited.status_code == 201, invited.text
    assert invited.json()["status"] == "pending" and invited.json()["email"] == host["email"]

    assert (await client.get("/api/v1/merchants/me/hosts", headers=mh)).json() == []
    assert (await client.get("/api/v1/me", headers=hh)).json()["streams_for"] == []
    for_host = await client.post(
        "/api/v1/streams", json={"title": TITLE, "host_id": host["id"]}, headers=mh
    )
    assert for_host.status_code == 403 and for_host.json()["error"]["code"] == "host_not_linked"
    by_host = await client.post(
        "/api/v1/streams", json={"title": TITLE, "merchant_id": merchant_id}, headers=hh
    )
    assert by_host.status_code == 403 and by_host.json()["error"]["code"] == "host_not_linked"

    seen = (await client.get("/api/v1/hosts/me/merchants", headers=hh)).json()
    assert [(m["merchant"]["id"], m["status"]) for m in seen] == [(merchant_id, "pending")]
    accepted = await client.post(f"/api/v1/hosts/me/merchants/{merchant_id}/accept", headers=hh)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted" and accepted.json()["accepted_at"]

    hosts = (await client.get("/api/v1/merchants/me/hosts", headers=mh)).json()
    assert [(h["id"], h["status"]) for h in hosts] == [(host["id"], "accepted")]
    assert (await client.get("/api/v1/merchants/me/invitations", headers=mh)).json() == []
    me = (await client.get("/api/v1/me", headers=hh)).json()
    assert [m["id"] for m in me["streams_for"]] == [merchant_id]
    seen = (await client.get("/api/v1/hosts/me/merchants", headers=hh)).json()
    assert [(m["merchant"]["id"], m["status"]) for m in seen] == [(merchant_id, "accepted")]
    for_host = await client.post(
        "/api/v1/streams", json={"title": TITLE, "host_id": host["id"]}, headers=mh
    )
    assert for_host.status_code == 201, for_host.text
    by_host = await client.post("/api/v1/streams", json={"title": TITLE}, headers=hh)
    assert by_host.status_code == 201, by_host.text
    again = await client.post(
        "/api/v1/merchants/me/hosts", json={"email": host["email"]}, headers=mh
    )
    assert again.status_code == 201 and again.json()["status"] == "accepted"


async def test_inviting_tells_the_merchant_nothing_about_the_email(
    client: httpx.AsyncClient,
) -> None:
    """A host's, a viewer's and an unknown email get the same pending answer and are listed
    alike, by the email the merchant typed; only a host may answer an invitation."""
    _, mh = await account(client, role="merchant")
    host = await register(client, role="host")
    viewer, vh = await account(client, role="viewer")
    emails = [host["email"], viewer["email"], "nobody-here@example.kz"]
    answers = []
    for email in emails:
        invited = await client.post("/api/v1/merchants/me/hosts", json={"email": email}, headers=mh)
        assert invited.status_code == 201, invited.text
        body = invited.json()
        answers.append((sorted(body), body["status"], body["email"]))
    assert [a[:2] for a in answers] == [(["email", "id", "invited_at", "status"], "pending")] * 3
    assert [a[2] for a in answers] == emails
    listed = (await client.get("/api/v1/merchants/me/invitations", headers=mh)).json()
    assert [i["email"] for i in listed] == emails
    assert all(sorted(i) == ["email", "id", "invited_at", "status"] for i in listed)
    assert (await client.get("/api/v1/hosts/me/merchants", headers=vh)).status_code == 403


async def test_an_invitation_matches_the_email_whatever_its_case(
    client: httpx.AsyncClient,
) -> None:
    """An email typed in capitals reaches the host's account."""
    merchant, mh = await account(client, role="merchant")
    host, hh = await account(client, role="host")
    invited = await client.post(
        "/api/v1/merchants/me/hosts", json={"email": host["email"].upper()}, headers=mh
    )
    assert invited.json()["email"] == host["email"]
    seen = (await client.get("/api/v1/hosts/me/merchants", headers=hh)).json()
    assert [m["merchant"]["id"] for m in seen] == [merchant["merchant"]["id"]]


async def test_a_host_declines_and_the_invitation_is_gone(client: httpx.AsyncClient) -> None:
    """Declined: neither side lists it, and it can no longer be accepted."""
    merchant, mh = await account(client, role="merchant")
    merchant_id = merchant["merchant"]["id"]
    host, hh = await account(client, role="host")
    await client.post("/api/v1/merchants/me/hosts", json={"email": host["email"]}, headers=mh)
    declined = await client.post(f"/api/v1/hosts/me/merchants/{merchant_id}/decline", headers=hh)
    assert declined.status_code == 204
    assert (await client.get("/api/v1/hosts/me/merchants", headers=hh)).json() == []
    assert (await client.get("/api/v1/merchants/me/invitations", headers=mh)).json() == []
    late = await client.post(f"/api/v1/hosts/me/merchants/{merchant_id}/accept", headers=hh)
    assert late.status_code == 404 and late.json()["error"]["code"] == "invitation_not_found"
    again = await client.post(f"/api/v1/hosts/me/merchants/{merchant_id}/decline", headers=hh)
    assert again.status_code == 404 and again.json()["error"]["code"] == "invitation_not_found"


async def test_only_the_invited_host_can_accept(client: httpx.AsyncClient) -> None:
    """Another host cannot accept an invitation sent to someone else's email."""
    merchant, mh = await account(client, role="merchant")
    merchant_id = merchant["merchant"]["id"]
    host = await register(client, role="host")
    _, other = await account(client, role="host")
    await client.post("/api/v1/merchants/me/hosts", json={"email": host["email"]}, headers=mh)
    taken = await client.post(f"/api/v1/hosts/me/merchants/{merchant_id}/accept", headers=other)
    assert taken.status_code == 404 and taken.json()["error"]["code"] == "invitation_not_found"
    assert (await client.get("/api/v1/merchants/me/hosts", headers=mh)).json() == []


async def test_the_merchant_cancels_an_invitation(client: httpx.AsyncClient) -> None:
    """A cancelled invitation disappears for the host; another merchant cannot cancel it."""
    merchant, mh = await account(client, role="merchant")
    merchant_id = merchant["merchant"]["id"]
    _, other_merchant = await account(client, role="merchant")
    host, hh = await account(client, role="host")
    invited = await client.post(
        "/api/v1/merchants/me/hosts", json={"email": host["email"]}, headers=mh
    )
    invitation_id = invited.json()["id"]
    foreign = await client.delete(
        f"/api/v1/merchants/me/invitations/{invitation_id}", headers=other_merchant
    )
    assert foreign.status_code == 404
    assert foreign.json()["error"]["code"] == "invitation_not_found"
    cancelled = await client.delete(f"/api/v1/merchants/me/invitations/{invitation_id}", headers=mh)
    assert cancelled.status_code == 204
    assert (await client.get("/api/v1/hosts/me/merchants", headers=hh)).json() == []
    late = await client.post(f"/api/v1/hosts/me/merchants/{merchant_id}/accept", headers=hh)
    assert late.status_code == 404


async def test_a_host_leaves_and_the_merchant_removes(client: httpx.AsyncClient) -> None:
    """Either side ends the link: the host no longer streams for the merchant."""
    merchant, mh = await account(client, role="merchant")
    merchant_id = merchant["merchant"]["id"]
    host, hh = await account(client, role="host")
    await link_host(client, mh, host, hh)
    left = await client.delete(f"/api/v1/hosts/me/merchants/{merchant_id}", headers=hh)
    assert left.status_code == 204
    assert (await client.get("/api/v1/me", headers=hh)).json()["streams_for"] == []
    assert (await client.get("/api/v1/merchants/me/hosts", headers=mh)).json() == []
    again = await client.delete(f"/api/v1/hosts/me/merchants/{merchant_id}", headers=hh)
    assert again.status_code == 404 and again.json()["error"]["code"] == "merchant_not_linked"

    await link_host(client, mh, host, hh)
    removed = await client.delete(f"/api/v1/merchants/me/hosts/{host['id']}", headers=mh)
    assert removed.status_code == 204
    assert (await client.get("/api/v1/me", headers=hh)).json()["streams_for"] == []
    gone = await client.delete(f"/api/v1/merchants/me/hosts/{host['id']}", headers=mh)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "host_not_found"


async def test_pending_invitations_are_bounded(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the limit of unanswered invitations a new one is 409; asking again is not new."""
    monkeypatch.setattr(accounts, "MAX_PENDING_INVITATIONS", 2)
    _, mh = await account(client, role="merchant")
    for email in ("a@example.kz", "b@example.kz", "a@example.kz"):
        invited = await client.post("/api/v1/merchants/me/hosts", json={"email": email}, headers=mh)
        assert invited.status_code == 201, invited.text
    over = await client.post(
        "/api/v1/merchants/me/hosts", json={"email": "c@example.kz"}, headers=mh
    )
    assert over.status_code == 409 and over.json()["error"]["code"] == "too_many_invitations"


async def test_only_merchants_invite_and_only_hosts_answer(client: httpx.AsyncClient) -> None:
    """Hosts and viewers cannot invite; merchants and viewers cannot answer."""
    merchant, _ = await account(client, role="merchant")
    merchant_id = merchant["merchant"]["id"]
    for role in ("host", "viewer"):
        _, headers = await account(client, role=role)
        invite = await client.post(
            "/api/v1/merchants/me/hosts", json={"email": "x@example.kz"}, headers=headers
        )
        assert invite.status_code == 403, role
    for role in ("merchant", "viewer"):
        _, headers = await account(client, role=role)
        accept = await client.post(
            f"/api/v1/hosts/me/merchants/{merchant_id}/accept", headers=headers
        )
        assert accept.status_code == 403, role


async def test_the_demo_host_has_accepted_the_demo_merchant(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Seeded twice, the demo host streams for the demo merchant, with nothing pending."""
    for _ in range(2):
        async with session_scope(app.state.sessions) as session:
            await seed_demo(session=session)
    demo = {a.role: a for a in DEMO_ACCOUNTS}
    hh = await login(client, demo["host"].email, demo["host"].password)
    mh = await login(client, demo["merchant"].email, demo["merchant"].password)
    merchant_id = (await client.get("/api/v1/me", headers=mh)).json()["merchant"]["id"]
    seen = (await client.get("/api/v1/hosts/me/merchants", headers=hh)).json()
    assert [(m["merchant"]["id"], m["status"]) for m in seen] == [(merchant_id, "accepted")]
    assert (await client.get("/api/v1/merchants/me/invitations", headers=mh)).json() == []
