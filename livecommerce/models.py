"""One place that imports every table, for Alembic and for tests that need the metadata."""


def import_all_models() -> None:
    from livecommerce.accounts import models as _accounts  # noqa: F401
    from livecommerce.catalog import models as _catalog  # noqa: F401
    from livecommerce.flashsales import models as _flashsales  # noqa: F401
    from livecommerce.fulfillment import models as _fulfillment  # noqa: F401
    from livecommerce.inventory import models as _inventory  # noqa: F401
    from livecommerce.notifications import models as _notifications  # noqa: F401
    from livecommerce.orders import models as _orders  # noqa: F401
    from livecommerce.rates import models as _rates  # noqa: F401
    from livecommerce.streams import models as _streams  # noqa: F401
