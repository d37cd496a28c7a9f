"""Texts shared by every page (see __init__.py)."""

from livecommerce.i18n.messages import N_

STRINGS: dict[str, str] = {
    "app.name": N_("Live shopping"),
    "nav.watch": N_("Watch"),
    "nav.host": N_("Host console"),
    "nav.merchant": N_("Merchant"),
    "auth.sign_in": N_("Sign in"),
    "auth.sign_out": N_("Sign out"),
    "auth.register": N_("Create an account"),
    "auth.email": N_("Email"),
    "auth.password": N_("Password"),
    "auth.name": N_("Your name"),
    "auth.signed_in_as": N_("Signed in as %(name)s"),
    "auth.need_role": N_("This page is for %(role)s accounts. Sign in with one."),
    "auth.watching_as_guest": N_("Watching as a guest"),
    "pick.language": N_("Language"),
    "pick.currency": N_("Currency"),
    "common.loading": N_("Loading…"),
    "common.save": N_("Save"),
    "common.cancel": N_("Cancel"),
    "common.close": N_("Close"),
    "common.retry": N_("Try again"),
    "common.offline": N_("Connection lost. Reconnecting…"),
    "common.error": N_("Something went wrong. Please try again."),
    "common.empty": N_("Nothing here yet."),
}
