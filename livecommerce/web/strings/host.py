"""Texts of the host console (see __init__.py)."""

from livecommerce.i18n.messages import N_

STRINGS: dict[str, str] = {
    # Who may use the page
    "host.roles": N_("host or merchant"),
    "host.switch_account": N_("Sign in with another account"),
    "host.intro": N_(
        "Run your live streams: go live, show products, start flash sales, talk to viewers."
    ),
    "host.for_merchant": N_("Streaming for %(merchant)s"),
    "host.no_merchant": N_(
        "Your host account is not linked to a merchant yet. Ask the merchant to add %(email)s to its hosts."
    ),
    # Streams
    "host.streams": N_("Your streams"),
    "host.streams_empty": N_("No streams yet. Create the first one."),
    "host.ended_more": N_("%(count)s ended streams"),
    "host.new_stream": N_("New stream"),
    "host.title_in": N_("Title · %(language)s"),
    "host.title_required": N_("Give the stream a title in at least one language."),
    "host.languages": N_("Languages of the stream"),
    "host.scheduled_at": N_("Starts at (optional)"),
    "host.playback_url": N_("Video address, HLS or MP4 (optional)"),
    "host.merchant": N_("Merchant"),
    "host.host": N_("Host"),
    "host.host_me": N_("Myself"),
    "host.create": N_("Create the stream"),
    "host.created": N_("Stream created. Go live when you are ready."),
    "host.scheduled_for": N_("Starts %(when)s"),
    "host.started_at": N_("Live since %(when)s"),
    "host.ended_at": N_("Ended %(when)s"),
    "host.not_scheduled": N_("No start time"),
    "host.hosted_by": N_("Host: %(name)s"),
    "host.pick_stream": N_("Choose a stream on the list, or create one, to open its console."),
    # Going live
    "host.start": N_("Go live"),
    "host.end": N_("End the stream"),
    "host.cancel_stream": N_("Cancel the stream"),
    "host.end_title": N_("End this stream?"),
    "host.end_text": N_(
        "Viewers will see that the stream is over, and a running flash sale stops. An ended stream cannot go live again."
    ),
    "host.started": N_("You are live."),
    "host.ended": N_("The stream has ended."),
    "host.open_viewer": N_("Viewer page"),
    "host.not_live_hint": N_("Go live to pin products, start flash sales and send announcements."),
    "host.state.connecting": N_("Connecting…"),
    "host.state.live": N_("Connected"),
    "host.state.closed": N_("Disconnected"),
    # Figures
    "host.stat.viewers": N_("Watching now"),
    "host.stat.orders": N_("Orders"),
    "host.stat.revenue": N_("Revenue"),
    "host.stat.unique": N_("Unique viewers"),
    "host.stat.peak": N_("Peak viewers"),
    "host.no_sales": N_("No sales yet"),
    "host.not_rolled_up": N_("not rolled up yet"),
    "host.sales_pending": N_(
        "Revenue and unique viewers are added up every minute or so; they are not rolled up yet."
    ),
    "host.sales_as_of": N_("Revenue and unique viewers as of %(time)s."),
    "host.chart.title": N_("Viewers and orders"),
    "host.chart.viewers": N_("Viewers"),
    "host.chart.orders": N_("Orders"),
    "host.chart.waiting": N_("The chart fills in while this page is open."),
    # Products and pins
    "host.products": N_("Products"),
    "host.search": N_("Search by name or SKU"),
    "host.pin": N_("Pin"),
    "host.on_air": N_("On air"),
    "host.unpin": N_("Unpin"),
    "host.nothing_pinned": N_(
        "Nothing is pinned. Pin a product and every viewer sees it with its price and delivery."
    ),
    "host.pinned_toast": N_("Pinned: %(product)s"),
    "host.unpinned": N_("The product is no longer pinned."),
    "host.no_products": N_("No products match."),
    "host.unavailable": N_("Not available"),
    "host.more_products": N_("Showing %(shown)s of %(total)s. Narrow the search to find others."),
    # Flash sales
    "host.sale.pick": N_("Sale"),
    "host.sale.product": N_("Product"),
    "host.sale.choose": N_("Choose a product"),
    "host.sale.price": N_("Sale price"),
    "host.sale.quantity": N_("Quantity"),
    "host.sale.duration": N_("Duration, seconds"),
    "host.sale.limit": N_("Per customer (optional)"),
    "host.sale.start": N_("Start the flash sale"),
    "host.sale.started": N_("The flash sale has started."),
    "host.sale.end": N_("End the sale now"),
    "host.sale.ended": N_("The flash sale has ended"),
    "host.sale.need_product": N_("Choose a product for the sale."),
    "host.sale.regular": N_("Regular price %(price)s"),
    "host.sale.sold": N_("%(sold)s sold"),
    "host.sale.last": N_("Last sale: %(product)s, %(sold)s of %(quantity)s sold"),
    # Announcements
    "host.announce.title": N_("Announcement"),
    "host.announce.hint": N_("Every viewer sees it in their own language."),
    "host.announce.send": N_("Send the announcement"),
    "host.announce.sent": N_("Announcement sent."),
    "host.announce.required": N_("Write the announcement in at least one language."),
    "host.announce.last": N_("Last sent: %(text)s"),
    # Chat moderation
    "host.chat.empty": N_("No messages yet."),
    "host.chat.delete": N_("Delete"),
    "host.chat.mute": N_("Mute"),
    "host.chat.unmute": N_("Unmute"),
    "host.chat.ban": N_("Ban"),
    "host.chat.unban": N_("Unban"),
    "host.chat.is_muted": N_("muted"),
    "host.chat.is_banned": N_("banned"),
    "host.chat.done.mute": N_("%(name)s is muted."),
    "host.chat.done.unmute": N_("%(name)s can chat again."),
    "host.chat.done.ban": N_("%(name)s is banned from this stream."),
    "host.chat.done.unban": N_("%(name)s is no longer banned."),
    "host.chat.you": N_("you"),
    "host.chat.count": N_("Messages: %(count)s"),
    "host.chat.placeholder": N_("Reply to your viewers…"),
    # Order ticker
    "host.ticker.empty": N_("Orders placed during the stream appear here."),
}
