"""Domain errors that carry their HTTP status, code and (translatable) message.

One handler in ``app.py`` renders them as ``{"error": {"code", "message", "details"}}`` with the
message in the request's locale. An expected conflict is never a 500.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, Field

from livecommerce.i18n.messages import N_, translate


class AppError(Exception):
    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    message: ClassVar[str] = N_("The request cannot be processed.")

    def __init__(self, details: dict[str, Any] | None = None, **params: Any) -> None:
        super().__init__(self.code)
        self.details = details or {}
        self.params = params

    def localized(self, locale: str) -> str:
        """The message in ``locale`` (an error whose parameters are themselves localized,
        such as a date, overrides this)."""
        return translate(locale, self.message, **self.params)

    def body(self, locale: str) -> dict[str, Any]:
        """The API's error object, the message in ``locale``."""
        message = self.localized(locale)
        return {"error": {"code": self.code, "message": message, "details": self.details}}


class BadRequest(AppError):
    pass


class ValidationFailed(AppError):
    status = 422
    code = "validation_error"
    message = N_("Some fields are invalid.")


class UnsupportedLocale(AppError):
    status = 422
    code = "unsupported_locale"
    message = N_("This language is not supported. Use one of: %(supported)s.")


class UnsupportedCurrency(AppError):
    status = 422
    code = "unsupported_currency"
    message = N_("This currency is not supported. Use one of: %(supported)s.")


class NotAuthenticated(AppError):
    status = 401
    code = "not_authenticated"
    message = N_("Sign in to continue.")


class InvalidToken(AppError):
    status = 401
    code = "invalid_token"
    message = N_("Your session has expired or is invalid. Please sign in again.")


class InvalidCredentials(AppError):
    status = 401
    code = "invalid_credentials"
    message = N_("Wrong email or password.")


class Forbidden(AppError):
    status = 403
    code = "forbidden"
    message = N_("You do not have permission to do this.")


class GuestNotAllowed(Forbidden):
    code = "guest_not_allowed"
    message = N_("Guests can watch only. Create an account to continue.")


class NotFound(AppError):
    status = 404
    code = "not_found"
    message = N_("Nothing was found at this address.")


class Conflict(AppError):
    status = 409
    code = "conflict"
    message = N_("The request conflicts with the current state.")


class PayloadTooLarge(AppError):
    status = 413
    code = "payload_too_large"
    message = N_("The upload is too large. The limit is %(limit_mb)s MB.")


def megabytes(limit_bytes: int) -> str:
    return f"{limit_bytes / (1024 * 1024):.3g}"


class ServiceUnavailable(AppError):
    status = 503
    code = "service_unavailable"
    message = N_("The service is temporarily unavailable. Please try again shortly.")


class DatabaseUnreachable(ServiceUnavailable):
    """The database could not be reached (refused, reset, timed out): a 503 to retry.

    Nothing of the request was committed unless the commit itself went through just before
    the connection broke; a retry with the same ``Idempotency-Key`` answers either way."""

    def __init__(self) -> None:
        super().__init__(details={"database": "unreachable"})
        self.headers = {"Retry-After": "2"}


class ErrorDetail(BaseModel):
    code: str = Field(description="snake_case, stable: what clients branch on")
    message: str = Field(description="for people, in the request's language")
    details: dict[str, Any] = Field(
        description="machine-readable particulars; a 422 lists `fields`, each with its own "
        "`field`, `code` and `message`"
    )


class ErrorOut(BaseModel):
    """The body of every error answer (``AppError.body`` and the handlers in ``app.py``)."""

    error: ErrorDetail


_ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "The request cannot be processed (such as a webhook without a valid signature).",
    401: "Not signed in, or the token is invalid, expired or revoked (`WWW-Authenticate`).",
    402: "The card was declined.",
    403: "Signed in, but not allowed to do this (guests only watch).",
    404: "Nothing at this address, or not yours to see.",
    409: "Conflicts with the current state (stock, a sale, an order's status...).",
    413: "The request body is over the upload limit.",
    422: "A field, parameter or header is invalid; `details.fields` lists each.",
    429: "Too many attempts: try again after `Retry-After` seconds.",
    503: "Temporarily unavailable (database busy or unreachable): retry after `Retry-After`.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for these error statuses, each the error envelope: declared once
    on a router, so every route's documented answers are the ones the handlers give."""
    return {
        status: {"model": ErrorOut, "description": _ERROR_DESCRIPTIONS[status]}
        for status in statuses
    }


# What an API route may answer besides its own success, declared once on the ``/api/v1``
# router rather than per route: the statuses come from the one set of handlers, and a client
# reads every one of them the same way (``error.code``).
API_ERROR_RESPONSES = error_responses(400, 401, 403, 404, 409, 413, 422, 429, 503)


# Localized texts for field-level validation errors, by pydantic error type or our own
# custom type. Anything not listed falls back to a generic "invalid value" text.
FIELD_MESSAGES: dict[str, str] = {
    "missing": N_("This field is required."),
    "extra_forbidden": N_("This field is not allowed."),
    "string_type": N_("Must be text."),
    "string_too_short": N_("Must be at least %(min_length)s characters long."),
    "string_too_long": N_("Must be at most %(max_length)s characters long."),
    "int_type": N_("Must be a whole number."),
    "int_parsing": N_("Must be a whole number."),
    "int_from_float": N_("Must be a whole number."),
    "bool_parsing": N_("Must be true or false."),
    "greater_than": N_("Must be greater than %(gt)s."),
    "greater_than_equal": N_("Must be at least %(ge)s."),
    "less_than": N_("Must be less than %(lt)s."),
    "less_than_equal": N_("Must be at most %(le)s."),
    "literal_error": N_("Must be one of: %(expected)s."),
    "enum": N_("Must be one of: %(expected)s."),
    "json_invalid": N_("The request body is not valid JSON."),
    "model_attributes_type": N_("Must be an object."),
    "dict_type": N_("Must be an object."),
    "model_type": N_("Must be an object."),
    "list_type": N_("Must be a list."),
    "datetime_parsing": N_("Must be a date and time in ISO 8601 format."),
    "datetime_from_date_parsing": N_("Must be a date and time in ISO 8601 format."),
    "invalid_email": N_("Enter a valid email address."),
    "invalid_characters": N_("Text must not contain control characters."),
    "invalid_sku": N_(
        "SKU: up to 64 letters, digits and . _ / -, starting with a letter or digit."
    ),
    "invalid_hs_code": N_("HS code must have 6 to 10 digits."),
    "invalid_country": N_("Use a two-letter ISO 3166 country code, such as CN or KZ."),
    "invalid_image_urls": N_("Give at most 10 image addresses starting with http:// or https://."),
    "invalid_price": N_("Price must be above zero, with no more decimals than the currency has."),
    "invalid_amount": N_("Amount must be a decimal number, such as 12990.00."),
    "unsupported_currency": N_("This currency is not supported."),
    "unsupported_language": N_("Language %(lang)s is not supported: use kk, ru, uz, en or zh."),
    "text_too_long": N_("Text must be at most %(max)s characters long."),
    "translation_required": N_("Give the text in at least one language."),
    "invalid_phone": N_("Enter a phone number with its country code, such as +7 701 123 45 67."),
    "duplicate_product": N_("List each product once and set its quantity instead."),
    "invalid_translations": N_('Give an object of texts keyed by language, such as {"ru": "..."}.'),
}
GENERIC_FIELD_MESSAGE = N_("This value is invalid.")
FIELD_MESSAGES["value_error"] = GENERIC_FIELD_MESSAGE


def field_message(
    kind: str, params: dict[str, Any], locale: str, template: str | None = None
) -> str:
    """The localized text for a field error of type ``kind`` (API bodies and CSV rows alike)."""
    template = template or FIELD_MESSAGES.get(kind, GENERIC_FIELD_MESSAGE)
    try:
        return translate(locale, template, **{k: str(v) for k, v in params.items()})
    except (KeyError, ValueError, TypeError):  # a placeholder the context did not provide
        return translate(locale, GENERIC_FIELD_MESSAGE)
