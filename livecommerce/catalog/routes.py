from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from starlette.datastructures import UploadFile

from livecommerce.accounts.deps import ContextDep, MerchantOrAdmin, MerchantUser
from livecommerce.catalog import service
from livecommerce.catalog.importer import import_products
from livecommerce.catalog.rendering import (
    presenter_for,
    render_import_report,
    render_stock,
    render_warehouse,
)
from livecommerce.catalog.schemas import (
    ImportReport,
    ProductCreate,
    ProductDetail,
    ProductPage,
    ProductUpdate,
    StockIn,
    StockLevel,
    WarehouseOut,
)
from livecommerce.deps import IdPath, IdQuery, SessionDep, SettingsDep
from livecommerce.errors import (
    BadRequest,
    PayloadTooLarge,
    megabytes,
)
from livecommerce.inventory import service as inventory
from livecommerce.rates.service import load_rate_book

router = APIRouter(tags=["catalog"])


async def _detail(session: SessionDep, ctx: ContextDep, product: service.Product) -> ProductDetail:
    user = ctx.principal.user if ctx.principal else None
    presenter = await presenter_for(
        session=session,
        user=user,
        locale=ctx.locale,
        currency=ctx.currency,
        book=await load_rate_book(session),
    )
    stock = await service.stock_for(session=session, products=[product])
    out = presenter.product(product, stock.get(product.id or 0, {}))
    return ProductDetail(**out.model_dump(), rates=presenter.rates())


@router.post("/products", status_code=status.HTTP_201_CREATED, response_model=ProductDetail)
async def create_product(
    body: ProductCreate, user: MerchantUser, session: SessionDep, ctx: ContextDep
) -> ProductDetail:
    merchant = await service.merchant_for_write(session=session, user=user)
    product = await service.create_product(session=session, merchant=merchant, data=body)
    return await _detail(session, ctx, product)


@router.get("/products", response_model=ProductPage)
async def list_products(
    session: SessionDep,
    ctx: ContextDep,
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=r"^[^\x00-\x1f\x7f]*$",
            description="Text in any language, or SKU",
        ),
    ] = None,
    merchant_id: IdQuery = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=service.MAX_PAGE_SIZE)] = 20,
) -> ProductPage:
    user = ctx.principal.user if ctx.principal else None
    products, total = await service.list_products(
        session=session,
        user=user,
        query=service.ProductQuery(q=q, merchant_id=merchant_id, page=page, page_size=page_size),
    )
    presenter = await presenter_for(
        session=session,
        user=user,
        locale=ctx.locale,
        currency=ctx.currency,
        book=await load_rate_book(session),
    )
    stock = await service.stock_for(session=session, products=products)
    items = [presenter.product(p, stock.get(p.id or 0, {})) for p in products]
    exact = total <= service.COUNT_CAP
    total = min(total, service.COUNT_CAP)
    return ProductPage(
        items=items,
        page=page,
        page_size=page_size,
        total=total,
        total_exact=exact,
        pages=service.page_count(total, page_size),
        rates=presenter.rates(),
    )


@router.get("/products/{product_id}", response_model=ProductDetail)
async def get_product(product_id: IdPath, session: SessionDep, ctx: ContextDep) -> ProductDetail:
    user = ctx.principal.user if ctx.principal else None
    product = await service.get_visible_product(session=session, user=user, product_id=product_id)
    return await _detail(session, ctx, product)


@router.patch("/products/{product_id}", response_model=ProductDetail)
async def update_product(
    product_id: IdPath,
    body: ProductUpdate,
    user: MerchantOrAdmin,
    session: SessionDep,
    ctx: ContextDep,
) -> ProductDetail:
    product = await service.get_writable_product(session=session, user=user, product_id=product_id)
    await service.update_product(session=session, product=product, data=body)
    return await _detail(session, ctx, product)


@router.delete("/products/{product_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_product(
    product_id: IdPath, user: MerchantOrAdmin, session: SessionDep
) -> Response:
    product = await service.get_writable_product(session=session, user=user, product_id=product_id)
    await service.delete_product(session=session, product=product)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/products/{product_id}/stock/{warehouse_code}", response_model=list[StockLevel])
async def set_stock(
    product_id: IdPath,
    warehouse_code: str,
    body: StockIn,
    user: MerchantOrAdmin,
    session: SessionDep,
) -> list[StockLevel]:
    product = await service.get_writable_product(session=session, user=user, product_id=product_id)
    levels = await service.set_stock(
        session=session, product=product, warehouse_code=warehouse_code, quantity=body.quantity
    )
    return render_stock(levels)


@router.post(
    "/products/import",
    response_model=ImportReport,
    openapi_extra={
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                }
            }
        }
    },
)
async def import_csv(
    request: Request,
    user: MerchantUser,
    session: SessionDep,
    settings: SettingsDep,
    ctx: ContextDep,
    encoding: Annotated[str, Query(description="utf-8 (default), cp1251 or utf-16")] = "utf-8",
) -> ImportReport:
    """Create or update products from a CSV file (multipart field ``file``).

    Columns: sku, title_<lang>, description_<lang>, price, currency, weight_grams, hs_code,
    origin_country, image_urls (separated by ``|``), stock_<WAREHOUSE>. Rows are matched by
    SKU: a re-import updates instead of duplicating. Bad rows are reported, good rows land.
    """
    limit = settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise PayloadTooLarge(limit_mb=megabytes(limit))
    form = await request.form(max_files=1, max_fields=5)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise BadRequest(details={"field": "file"})
    if upload.size is not None and upload.size > limit:
        raise PayloadTooLarge(limit_mb=megabytes(limit))
    merchant = await service.merchant_for_write(session=session, user=user)
    result = await import_products(
        session=session,
        merchant=merchant,
        file=upload.file,
        encoding=encoding,
        batch_size=settings.import_batch_size,
    )
    return render_import_report(result, ctx.locale)


@router.get("/warehouses", response_model=list[WarehouseOut], tags=["inventory"])
async def list_warehouses(session: SessionDep, ctx: ContextDep) -> list[WarehouseOut]:
    warehouses = await inventory.list_warehouses(session=session)
    return [render_warehouse(w, ctx.locale) for w in warehouses]
