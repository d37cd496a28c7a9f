"""Demo data: a Khorgos merchant with a translated catalog, a host and a viewer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from livecommerce.accounts import service as accounts
from livecommerce.accounts.models import Role, User
from livecommerce.catalog import service as catalog
from livecommerce.catalog.schemas import ProductCreate, ProductUpdate
from livecommerce.inventory import service as inventory

PRODUCTS_FILE = Path(__file__).with_name("products.json")


@dataclass(frozen=True)
class DemoAccount:
    role: str
    email: str
    password: str
    display_name: str
    locale: str


# Demo-only credentials, printed by `livecommerce seed --demo`; never use them in production.
DEMO_ACCOUNTS = (
    DemoAccount(
        "merchant",
        "merchant@demo.livecommerce.kz",
        "khorgos-demo-merchant",
        "Khorgos Silk Road Trading",
        "ru",
    ),
    DemoAccount("host", "host@demo.livecommerce.kz", "khorgos-demo-host", "Aigerim Live", "kk"),
    DemoAccount("viewer", "viewer@demo.livecommerce.kz", "khorgos-demo-viewer", "Dilnoza", "uz"),
)


async def _ensure_user(session: AsyncSession, account: DemoAccount) -> User:
    user = await session.scalar(select(User).where(col(User.email) == account.email))
    if user is not None:
        return user
    currency = "CNY" if account.role == "merchant" else None
    return await accounts.register(
        session=session,
        email=account.email,
        password=account.password,
        display_name=account.display_name,
        role=Role(account.role),
        locale=account.locale,
        currency=currency,
        merchant_name=account.display_name,
    )


async def seed_demo(*, session: AsyncSession) -> dict[str, int]:
    """Create or refresh the demo data; running it twice changes nothing more."""
    users = {a.role: await _ensure_user(session, a) for a in DEMO_ACCOUNTS}
    merchant = await accounts.require_merchant_of(session=session, user=users["merchant"])
    # The demo host has accepted the demo merchant's invitation.
    await accounts.invite_host(session=session, merchant=merchant, email=users["host"].email)
    assert merchant.id is not None
    await accounts.accept_invitation(session=session, host=users["host"], merchant_id=merchant.id)
    created = updated = 0
    levels: list[tuple[int, str, int]] = []
    for item in json.loads(PRODUCTS_FILE.read_text(encoding="utf-8")):
        payload = {
            k: item[k]
            for k in (
                "sku",
                "title",
                "description",
                "price",
                "weight_grams",
                "hs_code",
                "origin_country",
                "image_urls",
            )
        }
        try:
            product = await catalog.create_product(
                session=session, merchant=merchant, data=ProductCreate.model_validate(payload)
            )
            created += 1
        except catalog.SkuTaken:
            existing = await session.scalar(
                select(catalog.Product).where(
                    col(catalog.Product.merchant_id) == merchant.id,
                    col(catalog.Product.sku) == item["sku"],
                )
            )
            assert existing is not None
            product = await catalog.update_product(
                session=session,
                product=existing,
                data=ProductUpdate.model_validate({k: v for k, v in payload.items() if k != "sku"}),
            )
            updated += 1
        assert product.id is not None
        levels.extend((product.id, code, qty) for code, qty in item["stock"].items())
    await inventory.set_stock_levels(session=session, levels=levels)
    return {"created": created, "updated": updated}
