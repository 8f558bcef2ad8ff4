"""The application factory: every route, dependency, error handler and plugin in one place."""

from __future__ import annotations

from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

import identity
from api.scans import ScanController
from api.auth import PrincipalCheck, auth_middleware, keyring_lifespan, session_check
from api.bodies import BodyRequest
from api.benefits import AdminBenefitController, MyBenefitsController, PublicBenefitController
from api.codes import CodeController, JwksController
from api.credentials import MyCredentialController, StatusListController
from api.issuers import AdminIssuerController, TrustListController
from api.drain import DrainBodyMiddleware
from api.deps import (
    provide_conn, provide_keyring, provide_plain_conn, provide_public_url, provide_read_conn, provide_redis, provide_settings,
)
from api.errors import exception_handlers
from api.faces import FacesController
from api.fastscan import ScanFastPath
from api.exchange import AdminExchangeController, AdminQualityController, exchange_lifespan
from api.guards import provide_principal
from api.paging import provide_paging
from api.lifespan import freeze_startup_objects, resources
from api.httpmetrics import RequestMetrics
from api.logs import RequestIdMiddleware
from api.openapi import DocsPage, SchemaJson
from api.merchants import (
    AdminDeviceController,
    AdminMerchantController,
    AdminStaffController,
    AdminVenueController,
    DeviceController,
    MerchantDeviceController,
    MerchantPortalController,
    PublicVenueController,
    device_principal_check,
    merchant_keys,
)
from api.people import DevCityController, MeController, RosterController, SuishenLoginController, people_lifespan
from api.public import HealthController, MetricsController, pool_gauges, replica_checks
from api.accounts import AdminAccountController
from api.audit import AdminAuditController, checkpoint_lifespan
from api.ratings import AdminRatingController, MerchantRatingController, MyRedemptionController, overdue_gauge
from api.partitions import partitions_lifespan
from api.stats import AdminStatsController, stats_refresher
from api.sessions import SessionController
from foundation.settings import Settings, load_settings

__all__ = ("create_app",)


def route_handlers(settings: Settings | None = None) -> list:
    """Every controller of the service; the authorization matrix test walks this list.

    The simulated city platform's routes exist only outside production.
    """
    handlers = [
        HealthController,
        MetricsController,
        JwksController,
        SessionController,
        CodeController,
        PublicBenefitController,
        AdminBenefitController,
        MyBenefitsController,
        AdminMerchantController,
        AdminVenueController,
        AdminDeviceController,
        AdminStaffController,
        MerchantPortalController,
        MerchantDeviceController,
        DeviceController,
        PublicVenueController,
        SuishenLoginController,
        MeController,
        MyRedemptionController,
        AdminRatingController,
        MerchantRatingController,
        AdminStatsController,
        AdminAuditController,
        AdminAccountController,
        RosterController,
        ScanController,
        MyCredentialController,
        StatusListController,
        FacesController,
        AdminExchangeController,
        AdminQualityController,
        AdminIssuerController,
        TrustListController,
    ]
    if settings is None or not settings.is_production:
        handlers.append(DevCityController)
    return handlers


def principal_checks() -> dict[str, PrincipalCheck]:
    """The lifecycle check of every token kind (api.auth): sessions for people, the device gate
    for scanners. A kind missing here is refused."""
    checks: dict[str, PrincipalCheck] = dict.fromkeys(identity.SESSION_KINDS, session_check)
    checks["device"] = device_principal_check
    return checks


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or load_settings()
    if not settings.database_url or not settings.redis_url:
        raise RuntimeError(
            "create_app needs DATABASE_URL and REDIS_URL; `chongjun serve` starts embedded servers and sets them"
        )
    app = Litestar(
        route_handlers=route_handlers(settings),
        lifespan=[
            resources, pool_gauges, replica_checks, keyring_lifespan, merchant_keys, people_lifespan, checkpoint_lifespan, overdue_gauge,
            stats_refresher, exchange_lifespan, partitions_lifespan, freeze_startup_objects,
        ],
        dependencies={
            "conn": Provide(provide_conn),
            "redis": Provide(provide_redis, sync_to_thread=False),
            "settings": Provide(provide_settings, sync_to_thread=False),
            "plain_conn": Provide(provide_plain_conn),
            "read_conn": Provide(provide_read_conn),
            "keyring": Provide(provide_keyring, sync_to_thread=False),
            "public_url": Provide(provide_public_url, sync_to_thread=False),
            "principal": Provide(provide_principal, sync_to_thread=False),
            "paging": Provide(provide_paging, sync_to_thread=False),
        },
        exception_handlers=exception_handlers,
        middleware=[RequestMetrics, auth_middleware],
        request_max_body_size=settings.max_body_bytes,
        request_class=BodyRequest,  # one strict decoding path for every JSON body
        openapi_config=OpenAPIConfig(
            title="chongjun",
            version="1.0.0",
            description="崇军魔方 backend: identity, 免申即享 matching and exactly-once redemption.",
            path="/schema",
            # The docs page and the JSON document are finished by api.openapi (errors, security,
            # examples, the rule language); the page's script is served from the package.
            render_plugins=[DocsPage(), SchemaJson()],
            components=Components(
                security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")}
            ),
        ),
        logging_config=None,  # api.logs configures JSON logging; Litestar must not replace it
        debug=False,
    )
    app.state.settings = settings
    app.state.principal_checks = principal_checks()
    # Outside the router, so 404/405 answers get a request id and an access log line too.
    # The ordinary scan is answered below the router (api.fastscan), inside both wrappers.
    app.state.scan_fast_path = ScanFastPath(app.asgi_handler)
    app.asgi_handler = RequestIdMiddleware(DrainBodyMiddleware(app.state.scan_fast_path))
    return app
