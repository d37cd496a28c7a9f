// The viewer pages: the list of streams ("/") and a live stream ("/live/{id}") with the
// pinned product, flash sale, chat, reactions, order ticker and checkout.

import {
  ApiError,
  api,
  boot,
  clear,
  dayMonth,
  guestToken,
  h,
  idempotencyKey,
  mountHeader,
  onPrefsChange,
  openSignIn,
  prefs,
  session,
  t,
  toast,
} from "./core.js";
import { RoomSocket } from "./room.js";

const REACTIONS = { heart: "❤️", fire: "🔥", clap: "👏", laugh: "😂", wow: "😮", gift: "🎁" };
const COUNTRIES = ["KZ", "UZ", "RU", "KG"];
const HOME_CITY = {
  kk: ["KZ", "Алматы"],
  ru: ["RU", "Москва"],
  uz: ["UZ", "Toshkent"],
  en: ["KZ", "Almaty"],
  zh: ["KZ", "Almaty"],
};

// A pin reaches every viewer at the same instant. Whoever still has to ask the server for an
// estimate (a city the pin did not carry, a signed-in buyer's own customs allowance, a page
// opened after the pin) asks at a random moment in a window, not all at once: over the
// room's socket (the server answers such requests together, in batches) within the short
// window, over HTTP (each request costs the server a request) within the long one.
const ESTIMATE_SPREAD_MS = { socket: 250, http: 1500 };
const ESTIMATE_SOCKET_WAIT_MS = 5000; // no answer over the socket by then: ask over HTTP

const main = document.getElementById("main");

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The server's city folding (NFKC, case-folded, single spaces), close enough to match. */
function foldCity(text) {
  return String(text || "").normalize("NFKC").toLowerCase().split(/\s+/).filter(Boolean).join(" ");
}

function formatDate(iso) {
  return dayMonth(iso);
}

function formatTime(iso) {
  return new Intl.DateTimeFormat(prefs.locale, { dateStyle: "medium", timeStyle: "short" }).format(new Date(iso));
}

/** A product photo, or a plain tile when there is none or it fails to load. */
function productImage(url) {
  const tile = h("div", { class: "noimg", "aria-hidden": "true" }, "🛍");
  if (!url) return tile;
  const img = h("img", { src: url, alt: "", loading: "lazy" });
  img.addEventListener("error", () => img.replaceWith(tile));
  return img;
}

function shipTo() {
  try {
    const saved = JSON.parse(localStorage.getItem("lc.shipTo") || "null");
    if (saved && saved.country && saved.city) return saved;
  } catch {
    /* fall through */
  }
  const [country, city] = HOME_CITY[prefs.locale];
  return { country, city };
}

/** The duty and the import VAT behind "duties and taxes", each with its base and rate, shown
 * on demand; nothing when the parcel crosses no customs border. */
function customsBreakdown(charges) {
  if (!charges.length) return null;
  const label = (c) => {
    if (c.basis === "within_allowance") return t("checkout.customs.free");
    if (!c.base) return t("checkout.duties"); // a quote stored before the breakdown was kept
    if (c.type === "vat") return t("checkout.customs.vat", { rate: c.rate_text, base: c.base.formatted });
    if (c.basis === "per_kg_minimum") return t("checkout.customs.minimum", { minimum: c.minimum.formatted });
    return t("checkout.customs.duty", { rate: c.rate_text, base: c.base.formatted });
  };
  return h(
    "details",
    { class: "customs", id: "checkout-customs" },
    h("summary", { class: "small" }, t("checkout.customs_show")),
    charges.map((c) =>
      h("div", { class: "small", "data-charge": c.type }, h("span", {}, label(c)), h("span", {}, c.amount.formatted)),
    ),
  );
}

function saveShipTo(address) {
  localStorage.setItem("lc.shipTo", JSON.stringify(address));
}

// --- The list of streams -------------------------------------------------------------------

async function streamList() {
  const render = async () => {
    const [live, scheduled] = await Promise.all([
      api("/streams", { query: { status: "live" } }),
      api("/streams", { query: { status: "scheduled" } }),
    ]);
    const tile = (stream) =>
      h(
        "a",
        { class: "card stream-tile", href: `/live/${stream.id}`, dataset: { streamId: stream.id } },
        h("div", { class: "thumb", "aria-hidden": "true" }, "▶"),
        h(
          "div",
          { class: "row" },
          h("span", { class: `badge ${stream.status}` }, t(`status.${stream.status}`)),
          h("strong", { class: "grow" }, stream.title),
        ),
        h("span", { class: "muted small" }, t("streams.hosted_by", { host: stream.host_name })),
        stream.scheduled_at && stream.status === "scheduled"
          ? h("span", { class: "small" }, t("streams.starts", { when: formatTime(stream.scheduled_at) }))
          : null,
        stream.pinned_product
          ? h("span", { class: "small" }, `${stream.pinned_product.title} · ${stream.pinned_product.price.formatted}`)
          : null,
      );
    clear(
      main,
      h(
        "section",
        {},
        h("h1", {}, t("streams.live")),
        live.items.length
          ? h("div", { class: "streams", id: "live-streams" }, live.items.map(tile))
          : h("p", { class: "muted" }, t("streams.none_live")),
      ),
      h(
        "section",
        {},
        h("h2", {}, t("streams.scheduled")),
        scheduled.items.length
          ? h("div", { class: "streams" }, scheduled.items.map(tile))
          : h("p", { class: "muted" }, t("streams.none_scheduled")),
      ),
    );
  };
  await render();
  onPrefsChange(render);
}

// --- A live stream ------------------------------------------------------------------------

class LiveView {
  constructor(streamId) {
    this.streamId = streamId;
    this.state = null; // the welcome's snapshot, kept current by events
    this.chat = []; // {seq, name, text, system}
    this.reactions = {};
    this.ticker = [];
    this.announcement = null;
    this.connection = "connecting";
    this.estimate = null;
    this.carried = null; // the last pin's estimates: {productId, locale, currency, data}
    this.roomPrefs = null; // the locale and currency the room renders this socket's frames in
    this.ended = null;
    this.socket = new RoomSocket({
      streamId,
      token: async () => session.token || (await guestToken()),
      prefs: () => ({ locale: prefs.locale, currency: prefs.currency }),
      onFrame: (frame) => this.onFrame(frame),
      onState: (state) => {
        this.connection = state;
        this.renderStatus();
      },
    });
    window.livecommerce = { room: this.socket, view: this };
  }

  async start() {
    this.layout();
    this.socket.connect();
    onPrefsChange(() => {
      this.layout();
      this.socket.reconnect();
    });
    setInterval(() => this.renderSale(), 1000);
  }

  onFrame(frame) {
    const data = frame.data || {};
    switch (frame.type) {
      case "welcome":
        this.roomPrefs = { locale: data.locale, currency: data.currency };
        if (data.resumed === true && this.state) {
          this.state.viewer_count = data.viewer_count;
        } else {
          this.state = data;
          if (data.resumed === false) this.chat = [];
        }
        this.render();
        this.refreshEstimate({ spread: true });
        break;
      case "chat":
        this.chat.push({ seq: frame.seq, name: data.user.name, text: data.text });
        this.renderChat();
        break;
      case "chat_deleted":
        this.chat = this.chat.filter((m) => m.seq !== data.seq);
        this.renderChat();
        break;
      case "product_pinned":
        this.state.pinned_product = data.product;
        this.carried =
          data.product && data.estimates && this.roomPrefs
            ? { productId: data.product.id, ...this.roomPrefs, data: data.estimates }
            : null;
        this.renderPinned();
        this.refreshEstimate({ spread: true });
        break;
      case "flash_sale": {
        const current = this.state.flash_sale;
        // Keep the lowest remaining seen for a sale (updates may cross between processes).
        if (current && current.id === data.id && data.status === "active") {
          data.remaining = Math.min(current.remaining, data.remaining);
        }
        this.state.flash_sale = data;
        this.renderSale();
        break;
      }
      case "announcement":
        this.announcement = data.text;
        this.chat.push({ seq: frame.seq, system: true, text: data.text });
        this.renderAnnouncement();
        this.renderChat();
        break;
      case "order_placed":
        this.ticker = [...data.orders, ...this.ticker].slice(0, 8);
        this.renderTicker();
        break;
      case "stream_status":
        this.state.stream.status = data.status;
        if (data.text) this.chat.push({ seq: frame.seq, system: true, text: data.text });
        this.render();
        break;
      case "reactions":
        for (const [kind, count] of Object.entries(data.counts || {})) {
          this.reactions[kind] = (this.reactions[kind] || 0) + count;
        }
        this.renderReactions();
        break;
      case "viewer_count":
        if (this.state) this.state.viewer_count = data.count;
        this.renderStatus();
        break;
      case "moderation":
        if (this.state && data.user_id === this.state.you.user_id) {
          this.state.you.can_chat = data.action === "unmute" || data.action === "unban";
          this.renderChat();
        }
        break;
      case "estimate":
        this.estimateAnswered(frame);
        break;
      case "error":
        if (!this.estimateAnswered(frame)) toast(data.message, "error");
        break;
      case "closed":
        this.ended = data.code;
        this.render();
        break;
      default:
        break;
    }
  }

  layout() {
    this.el = {
      status: h("div", { class: "overlay" }),
      video: h("div", { class: "video", id: "video" }),
      pinned: h("section", { class: "card", id: "pinned" }),
      sale: h("section", { class: "card sale", id: "sale", hidden: true }),
      announcement: h("section", { class: "card", id: "announcement", hidden: true }),
      chat: h("section", { class: "card chat", id: "chat" }),
      reactions: h("section", { class: "card", id: "reactions" }),
      ticker: h("section", { class: "card", id: "ticker" }),
    };
    clear(
      main,
      h("a", { href: "/", class: "muted small" }, `← ${t("live.back")}`),
      h(
        "div",
        { class: "live-view" },
        h("div", { class: "stage" }, this.el.video, this.el.sale, this.el.pinned, this.el.announcement),
        h("div", { class: "side" }, this.el.reactions, this.el.chat, this.el.ticker),
      ),
    );
    if (this.state) this.render();
  }

  render() {
    if (this.ended === 4404) {
      clear(main, h("p", { class: "card" }, t("live.not_found")), h("a", { href: "/" }, t("live.back")));
      return;
    }
    if (this.ended === 4403) {
      clear(main, h("p", { class: "card error" }, t("live.banned")), h("a", { href: "/" }, t("live.back")));
      return;
    }
    if (!this.state) return;
    document.title = `${this.state.stream.title} · ${t("app.name")}`;
    this.renderVideo();
    this.renderPinned();
    this.renderSale();
    this.renderAnnouncement();
    this.renderChat();
    this.renderReactions();
    this.renderTicker();
  }

  renderStatus() {
    if (!this.el || !this.state) return;
    const stream = this.state.stream;
    const offline = this.connection === "offline" || this.connection === "connecting";
    clear(
      this.el.status,
      h("span", { class: `badge ${stream.status}` }, t(`status.${stream.status}`)),
      h("span", { class: "badge", id: "viewer-count" }, t("live.viewers", { count: this.state.viewer_count })),
      offline ? h("span", { class: "badge state-offline", id: "offline" }, t("live.reconnecting")) : null,
    );
  }

  renderVideo() {
    const stream = this.state.stream;
    const url = stream.playback_url;
    const body =
      stream.status === "ended"
        ? h("div", { class: "placeholder" }, h("strong", {}, t("live.ended")))
        : url
          ? h("video", { src: url, autoplay: true, muted: true, playsinline: true, controls: true })
          : h(
              "div",
              { class: "placeholder" },
              h("strong", {}, stream.title),
              h("p", {}, t("streams.hosted_by", { host: stream.host?.name || stream.host_name || "" })),
              h("p", { class: "small" }, t("live.no_video")),
            );
    clear(this.el.video, body, this.el.status);
    this.renderStatus();
  }

  renderPinned() {
    const product = this.state.pinned_product;
    if (!product) {
      clear(this.el.pinned, h("h2", {}, t("pinned.title")), h("p", { class: "muted" }, t("pinned.none")));
      return;
    }
    const address = shipTo();
    const estimate = this.estimate && this.estimate.productId === product.id ? this.estimate : null;
    const city = h("input", {
      value: address.city,
      "aria-label": t("checkout.city"),
      id: "estimate-city",
      size: 12,
      onchange: (e) => {
        saveShipTo({ ...shipTo(), city: e.target.value });
        this.refreshEstimate();
      },
    });
    const country = h(
      "select",
      {
        "aria-label": t("checkout.country"),
        id: "estimate-country",
        onchange: (e) => {
          saveShipTo({ ...shipTo(), country: e.target.value });
          this.refreshEstimate();
        },
      },
      COUNTRIES.map((code) => h("option", { value: code, selected: code === address.country }, t(`country.${code}`))),
    );
    clear(
      this.el.pinned,
      h("h2", {}, t("pinned.title")),
      h(
        "div",
        { class: "product", dataset: { productId: product.id } },
        productImage(product.image_url),
        h(
          "div",
          {},
          h("h3", { id: "pinned-title" }, product.title),
          h("div", { class: "price", id: "pinned-price" }, product.price.formatted),
          estimate && estimate.error
            ? h("p", { class: "eta error" }, t("checkout.quote_failed", { reason: estimate.error }))
            : null,
          estimate && !estimate.error && !estimate.none
            ? h(
                "p",
                { class: "eta", id: "pinned-eta" },
                t("pinned.delivery", { city: estimate.city, date: formatDate(estimate.eta) }),
                " · ",
                estimate.duties ? t("pinned.duties", { amount: estimate.duties }) : t("pinned.no_duties"),
              )
            : null,
          h("div", { class: "row small" }, h("span", { class: "muted" }, t("pinned.ship_to")), country, city),
          h(
            "div",
            { class: "row" },
            h("button", { class: "primary", id: "buy", onclick: () => this.checkout(product, null) }, t("pinned.buy")),
          ),
        ),
      ),
    );
  }

  /** The estimate to ``address`` that the last pin carried, if it holds one for that city
   * in this page's language and currency. */
  carriedEstimate(product, address) {
    const carried = this.carried;
    if (!carried || carried.productId !== product.id) return null;
    if (carried.locale !== prefs.locale || carried.currency !== prefs.currency) return null;
    if (carried.data.out_of_stock) return { productId: product.id, none: true };
    const city = foldCity(address.city);
    const found = carried.data.destinations.find((d) => d.country === address.country && d.match.includes(city));
    if (!found) return null;
    return {
      productId: product.id,
      eta: found.eta,
      city: found.city,
      duties: Number(found.duties.amount) > 0 ? found.duties.formatted : null,
      monthly: found.monthly_allowance,
    };
  }

  /** Shows the pinned product's delivery estimate: from the pin frame when it carries this
   * viewer's city, else (and for a signed-in buyer's own monthly allowance) from the
   * server. ``spread``: the call answers a room event every viewer got at once. */
  async refreshEstimate({ spread = false } = {}) {
    const product = this.state && this.state.pinned_product;
    if (!product) return;
    const address = shipTo();
    const asked = (this.estimateAsked = (this.estimateAsked || 0) + 1);
    const carried = this.carriedEstimate(product, address);
    if (carried) {
      this.estimate = carried;
      this.renderPinned();
      if (carried.none || !carried.monthly || !session.user) return;
    }
    const over = this.connection === "live" ? "socket" : "http";
    if (spread) await sleep(Math.random() * ESTIMATE_SPREAD_MS[over]);
    if (asked !== this.estimateAsked) return; // a newer pin or address meanwhile
    let estimate;
    try {
      const answer = await this.askEstimate(product, address, asked);
      estimate = {
        productId: product.id,
        eta: answer.eta,
        city: answer.destination.city,
        duties: Number(answer.duties.amount) > 0 ? answer.duties.formatted : null,
      };
    } catch (err) {
      estimate = { productId: product.id, error: err.message };
    }
    if (asked !== this.estimateAsked) return;
    this.estimate = estimate;
    this.renderPinned();
  }

  /** The server's estimate: over the room's socket when it is open, else (or when no
   * answer comes) from the endpoint. Both answer the same figures. */
  async askEstimate(product, address, asked) {
    const ref = `estimate-${asked}`;
    const data = { product_id: product.id, country: address.country, city: address.city, ref };
    const answered = new Promise((resolve) => {
      this.estimateWaiting = { ref, resolve };
      setTimeout(() => resolve(null), ESTIMATE_SOCKET_WAIT_MS);
    });
    if (this.socket.send({ type: "estimate", data })) {
      const frame = await answered;
      if (frame && frame.type === "error") throw new Error(frame.data.message);
      if (frame) return frame.data;
    }
    this.estimateWaiting = null;
    return api(`/products/${product.id}/delivery-estimate`, {
      query: { country: address.country, city: address.city },
    });
  }

  /** True when ``frame`` answers the estimate this page is waiting for. */
  estimateAnswered(frame) {
    const waiting = this.estimateWaiting;
    if (!waiting || !frame.data || frame.data.ref !== waiting.ref) return false;
    this.estimateWaiting = null;
    waiting.resolve(frame);
    return true;
  }

  renderSale() {
    if (!this.el || !this.state) return;
    const sale = this.state.flash_sale;
    if (!sale) {
      this.el.sale.hidden = true;
      return;
    }
    this.el.sale.hidden = false;
    const left = Math.max(0, Math.round((new Date(sale.ends_at) - Date.now()) / 1000));
    const status = left === 0 && sale.status === "active" ? "ended" : sale.status;
    const clock = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
    const share = sale.quantity ? (100 * sale.remaining) / sale.quantity : 0;
    clear(
      this.el.sale,
      h(
        "div",
        { class: "row" },
        h("h2", { class: "grow" }, `⚡ ${t("sale.title")}`),
        status === "active" ? h("span", { class: "countdown", id: "sale-countdown" }, clock) : null,
      ),
      h(
        "div",
        { class: "row" },
        h("strong", { class: "grow" }, sale.product.title),
        h("span", { class: "price" }, sale.price.formatted, h("s", {}, sale.product.price.formatted)),
      ),
      h("div", { class: "meter", "aria-hidden": "true" }, h("span", { style: { width: `${share}%` } })),
      h(
        "p",
        { class: "small", id: "sale-remaining" },
        status === "sold_out"
          ? t("sale.sold_out")
          : status === "ended"
            ? t("sale.ended")
            : t("sale.left", { remaining: sale.remaining, quantity: sale.quantity }),
        sale.per_customer_limit ? ` · ${t("sale.limit", { limit: sale.per_customer_limit })}` : "",
      ),
      status === "active"
        ? h("button", { class: "primary", id: "buy-sale", onclick: () => this.checkout(sale.product, sale) }, t("sale.buy"))
        : null,
    );
  }

  renderAnnouncement() {
    if (!this.announcement) {
      this.el.announcement.hidden = true;
      return;
    }
    this.el.announcement.hidden = false;
    clear(this.el.announcement, h("h3", {}, `📣 ${t("announce.title")}`), h("p", { id: "announcement-text" }, this.announcement));
  }

  renderChat() {
    if (!this.state) return;
    const you = this.state.you;
    const list = h(
      "ol",
      { id: "chat-messages" },
      this.chat.slice(-200).map((m) =>
        m.system ? h("li", { class: "system" }, m.text) : h("li", {}, h("b", {}, m.name), m.text),
      ),
    );
    const input = h("input", { maxlength: 500, placeholder: t("chat.placeholder"), "aria-label": t("chat.placeholder") });
    const form = you.guest
      ? h(
          "div",
          { class: "row" },
          h("button", { onclick: () => openSignIn(() => window.location.reload()) }, t("chat.sign_in")),
        )
      : you.can_chat === false
        ? h("p", { class: "muted small" }, t("chat.muted"))
        : h(
            "form",
            {
              id: "chat-form",
              onsubmit: (event) => {
                event.preventDefault();
                const text = input.value.trim();
                if (text && this.socket.send({ type: "chat", data: { text } })) input.value = "";
              },
            },
            input,
            h("button", { type: "submit" }, t("chat.send")),
          );
    clear(this.el.chat, h("h2", {}, t("chat.title")), list, form);
    list.scrollTop = list.scrollHeight;
  }

  renderReactions() {
    clear(
      this.el.reactions,
      h(
        "div",
        { class: "reactions", "aria-label": t("react.title") },
        Object.entries(REACTIONS).map(([kind, emoji]) =>
          h(
            "button",
            { class: "chip", dataset: { kind }, onclick: () => this.socket.send({ type: "react", data: { kind } }) },
            emoji,
            h("span", { class: "count" }, String(this.reactions[kind] || 0)),
          ),
        ),
      ),
    );
  }

  renderTicker() {
    clear(
      this.el.ticker,
      h("h2", {}, t("ticker.title")),
      this.ticker.length
        ? h(
            "ol",
            { class: "ticker", id: "ticker-list" },
            this.ticker.map((o) => h("li", {}, `🛍 ${t("ticker.entry", { buyer: o.buyer, product: o.product })}`)),
          )
        : h("p", { class: "muted small" }, t("common.empty")),
    );
  }

  checkout(product, sale) {
    if (!session.token) {
      openSignIn(() => this.checkout(product, sale));
      return;
    }
    new Checkout(this, product, sale).open();
  }
}

// --- Checkout -------------------------------------------------------------------------------

class Checkout {
  constructor(view, product, sale) {
    Object.assign(this, { view, product, sale });
    this.quantity = 1;
    this.method = "cod";
    this.delivery = "courier"; // or "postal", where the destination offers it
    this.stage = "form";
    this.quote = null;
    this.error = "";
    this.key = idempotencyKey();
    this.dialog = h("dialog", { class: "sheet", id: "checkout" });
    const saved = shipTo();
    this.address = {
      country: saved.country,
      city: saved.city,
      postal_code: saved.postal_code || "",
      address_line1: saved.address_line1 || "",
      recipient_name: saved.recipient_name || session.user?.display_name || "",
      phone: saved.phone || "",
    };
    // Asked for only when the quote says customs needs it, and never saved in the browser.
    this.taxId = "";
  }

  open() {
    document.body.append(this.dialog);
    this.dialog.showModal();
    this.render();
    this.requote();
  }

  close() {
    this.dialog.close();
    this.dialog.remove();
  }

  /** What the quote and the order share: the same items, sale and stream, so the order is
   * charged what the quote showed (a flash sale's price only applies with its id). */
  body() {
    const items = [{ product_id: this.product.id, quantity: this.quantity }];
    const body = { items, ship_to: this.address, delivery: this.delivery };
    if (this.needsTaxId() && this.taxId.trim()) body.ship_to = { ...this.address, tax_id: this.taxId.trim() };
    if (this.sale) body.flash_sale_id = this.sale.id;
    if (this.view.streamId) body.stream_id = this.view.streamId;
    return body;
  }

  async requote() {
    // Until the new figures are in, nothing can be ordered at the old ones.
    const asked = (this.asked = (this.asked || 0) + 1);
    this.quote = null;
    this.refresh();
    let quote = null;
    let error = "";
    try {
      quote = await api("/quotes", {
        method: "POST",
        body: { ...this.body(), ship_to: { country: this.address.country, city: this.address.city } },
      });
    } catch (err) {
      error = t("checkout.quote_failed", { reason: err.message });
    }
    if (asked !== this.asked) return; // a newer quote was asked for meanwhile
    this.quote = quote;
    this.error = error;
    this.refresh();
  }

  needsTaxId() {
    return this.quote?.consignee?.tax_id === "required";
  }

  /** The recipient's tax id, when a parcel's customs rule asks for it at these figures. */
  taxIdField() {
    if (!this.needsTaxId()) return null;
    const name = this.quote.consignee.tax_id_name || "";
    return h(
      "label",
      { id: "checkout-tax-id" },
      t("checkout.tax_id", { name }),
      h("input", {
        name: "tax_id",
        inputmode: "numeric",
        autocomplete: "off",
        required: true,
        value: this.taxId,
        oninput: (e) => (this.taxId = e.target.value),
      }),
      h("span", { class: "muted small" }, t("checkout.tax_id_hint", { name })),
    );
  }

  field(name, label, attrs = {}) {
    return h(
      "label",
      {},
      label,
      h("input", {
        name,
        value: this.address[name],
        required: name !== "postal_code",
        oninput: (e) => {
          this.address[name] = e.target.value;
        },
        onchange: (e) => {
          this.address[name] = e.target.value;
          saveShipTo(this.address);
          if (name === "city") this.requote();
        },
        ...attrs,
      }),
    );
  }

  summary() {
    const q = this.quote;
    if (!q) return h("p", { class: "muted small" }, t("common.loading"));
    return h(
      "div",
      { class: "lines", id: "checkout-summary" },
      h("div", {}, h("span", {}, `${this.product.title} × ${this.quantity}`), h("span", {}, q.subtotal.formatted)),
      h("div", {}, h("span", {}, t("checkout.shipping")), h("span", {}, q.shipping.formatted)),
      h("div", {}, h("span", {}, t("checkout.duties")), h("span", { id: "checkout-duties" }, q.duties.formatted)),
      customsBreakdown(q.customs || []),
      this.deliveryChoice(q),
      h("div", { class: "total" }, h("span", {}, t("checkout.total")), h("span", { id: "checkout-total" }, q.total.formatted)),
      q.shipments.map((s) =>
        h(
          "p",
          { class: "legs" },
          `${t("checkout.from", { warehouse: s.warehouse })} · ${t("checkout.eta", { date: formatDate(s.eta) })}: `,
          s.legs.map((leg) => `${leg.from} → ${leg.to} (${leg.days})`).join(", "),
        ),
      ),
    );
  }

  /** Courier or post, where the destination offers both (the quote says which): the
   * choice changes the last leg, the shipping and, in Uzbekistan, the duty-free allowance. */
  deliveryChoice(q) {
    const offered = q.deliveries || ["courier"];
    if (offered.length < 2) return null;
    return h(
      "div",
      { class: "row small", id: "checkout-delivery", role: "radiogroup", "aria-label": t("checkout.delivery") },
      h("span", { class: "muted" }, t("checkout.delivery")),
      offered.map((kind) =>
        h(
          "label",
          { class: "row" },
          h("input", {
            type: "radio",
            name: "delivery",
            value: kind,
            checked: this.delivery === kind,
            onchange: () => {
              this.delivery = kind;
              this.requote();
            },
          }),
          t(`checkout.delivery.${kind}`),
        ),
      ),
    );
  }

  /** Only the figures, the error and the button change with a new quote: the fields the
   * buyer is typing into stay as they are. */
  refresh() {
    if (this.stage !== "form" || !this.slots) return this.render();
    clear(this.slots.summary, this.summary());
    clear(this.slots.taxId, this.taxIdField());
    clear(this.slots.error, this.error ? h("p", { class: "error", role: "alert", id: "checkout-error" }, this.error) : null);
    this.slots.place.disabled = !this.quote;
  }

  render(after = null) {
    if (this.stage !== "form") return; // paying or done: the form is gone
    const q = this.quote;
    this.slots = {
      summary: h("div", {}, this.summary()),
      taxId: h("div", {}, this.taxIdField()),
      error: h("div", {}, this.error ? h("p", { class: "error", role: "alert", id: "checkout-error" }, this.error) : null),
      place: h("button", { type: "submit", class: "primary", id: "place-order", disabled: !q }, t("checkout.place")),
    };
    const form = h(
      "form",
      {
        onsubmit: async (event) => {
          event.preventDefault();
          await this.place();
        },
      },
      h("h2", {}, t("checkout.title")),
      h(
        "div",
        { class: "row" },
        h(
          "label",
          {},
          t("checkout.quantity"),
          h("input", {
            type: "number",
            min: 1,
            max: 99,
            value: this.quantity,
            name: "quantity",
            onchange: (e) => {
              this.quantity = Math.max(1, Number(e.target.value) || 1);
              this.requote();
            },
          }),
        ),
        h(
          "label",
          { class: "grow" },
          t("checkout.country"),
          h(
            "select",
            {
              name: "country",
              onchange: (e) => {
                this.address.country = e.target.value;
                this.delivery = "courier"; // every destination has a courier; not every one a post
                saveShipTo(this.address);
                this.requote();
              },
            },
            COUNTRIES.map((code) => h("option", { value: code, selected: code === this.address.country }, t(`country.${code}`))),
          ),
        ),
      ),
      this.field("city", t("checkout.city")),
      this.field("address_line1", t("checkout.address")),
      h("div", { class: "row" }, this.field("postal_code", t("checkout.postal_code")), this.field("phone", t("checkout.phone"), { type: "tel" })),
      this.field("recipient_name", t("checkout.recipient")),
      this.slots.taxId,
      this.slots.summary,
      h(
        "div",
        { class: "row" },
        ["cod", "card"].map((method) =>
          h(
            "label",
            { class: "row" },
            h("input", {
              type: "radio",
              name: "method",
              value: method,
              checked: this.method === method,
              onchange: () => (this.method = method),
            }),
            t(method === "cod" ? "checkout.pay_cod" : "checkout.pay_card"),
          ),
        ),
      ),
      this.slots.error,
      after,
      h(
        "div",
        { class: "row" },
        this.slots.place,
        h("button", { type: "button", class: "link", onclick: () => this.close() }, t("common.close")),
      ),
    );
    clear(this.dialog, form);
  }

  async place() {
    const body = { ...this.body(), payment_method: this.method };
    try {
      const order = await api("/orders", {
        method: "POST",
        body,
        headers: { "Idempotency-Key": this.key },
      });
      this.key = idempotencyKey();
      this.stage = "paying";
      if (order.payment_method === "card" && order.status === "pending_payment") {
        this.payByCard(order);
      } else {
        this.done(order);
      }
    } catch (err) {
      this.error = err instanceof ApiError ? err.message : t("common.error");
      this.refresh();
    }
  }

  async payByCard(order) {
    const payment = await api(`/orders/${order.id}/payments`, {
      method: "POST",
      headers: { "Idempotency-Key": idempotencyKey() },
    });
    const number = h("input", { id: "card-number", inputmode: "numeric", autocomplete: "cc-number", value: "" });
    const form = h(
      "form",
      {
        onsubmit: async (event) => {
          event.preventDefault();
          const response = await fetch(payment.confirm_url, {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ client_secret: payment.client_secret, card_number: number.value }),
          });
          const result = await response.json().catch(() => ({}));
          if (!response.ok || result.status !== "succeeded") {
            toast(result.error?.message || result.failure_code || t("common.error"), "error");
            return;
          }
          clear(this.dialog, h("p", {}, t("checkout.waiting")));
          for (let i = 0; i < 50; i += 1) {
            const current = await api(`/orders/${order.id}`);
            if (current.status !== "pending_payment") return this.done(current);
            await new Promise((resolve) => setTimeout(resolve, 300));
          }
          this.done(order);
        },
      },
      h("h2", {}, t("checkout.pay", { amount: order.total.formatted })),
      h("label", {}, t("checkout.card_number"), number),
      h("p", { class: "muted small" }, t("checkout.card_hint")),
      h("div", { class: "row" }, h("button", { type: "submit", class: "primary", id: "pay" }, t("checkout.pay", { amount: order.total.formatted }))),
    );
    clear(this.dialog, form);
  }

  done(order) {
    clear(
      this.dialog,
      h("h2", { class: "ok", id: "order-done" }, t("checkout.placed", { order: `#${order.id}` })),
      order.status === "paid" ? h("p", {}, t("checkout.paid")) : null,
      order.payment ? h("p", { id: "order-instructions" }, order.payment.text) : null,
      h("div", { class: "row" }, h("button", { class: "primary", onclick: () => this.close() }, t("common.close"))),
    );
  }
}

// --- Start -----------------------------------------------------------------------------------

boot(async () => {
  const match = window.location.pathname.match(/^\/live\/(\d+)/);
  mountHeader(document.getElementById("header"), {
    active: "watch",
    onAuth: () => window.location.reload(),
  });
  if (match) {
    await new LiveView(Number(match[1])).start();
  } else {
    await streamList();
  }
});
