// The host console ("/host"): a host's or merchant's streams, going live, pinning products,
// flash sales, announcements, live figures and chat moderation.

import {
  CURRENCIES,
  LOCALE_NAMES,
  LOCALES,
  api,
  boot,
  clear,
  dayMonth,
  h,
  mountHeader,
  onPrefsChange,
  openSignIn,
  prefs,
  session,
  t,
  toast,
} from "./core.js";
import { RoomSocket } from "./room.js";

const main = document.getElementById("main");
const TEXT_LANGUAGES = ["kk", "ru", "uz"]; // titles and announcements are written in these
const DRIVERS = ["host", "merchant"];
const SAMPLE_MS = 5000; // chart resolution
const POLL_MS = 15000; // stream stats (sales are rolled up by a worker, about once a minute)
const MAX_SAMPLES = 180; // 15 minutes of chart
const MAX_CHAT = 300;
const MAX_TICKER = 20;
const ENDED_SHOWN = 5;
const PRODUCTS_PAGE = 24;
const SVG = "http://www.w3.org/2000/svg";
const RESTRICTED = { mute: "host.chat.is_muted", ban: "host.chat.is_banned" };

// --- Small helpers ----------------------------------------------------------------------------

const pad = (n) => String(n).padStart(2, "0");

function clock(date) {
  return `${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** "28 қараша, 19:30" in the page's language (local time). */
function when(iso) {
  const d = new Date(iso);
  return `${dayMonth(`${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`)}, ${clock(d)}`;
}

function localInputValue(date) {
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${clock(date)}`;
}

function whenLine(stream) {
  if (stream.status === "live" && stream.started_at) return t("host.started_at", { when: when(stream.started_at) });
  if (stream.status === "ended" && stream.ended_at) return t("host.ended_at", { when: when(stream.ended_at) });
  if (stream.scheduled_at) return t("host.scheduled_for", { when: when(stream.scheduled_at) });
  return t("host.not_scheduled");
}

function badge(status) {
  return h("span", { class: `badge ${status}` }, t(`status.${status}`));
}

/** A product photo, or a plain tile when there is none or it cannot load (offline, gone). */
function productImage(url) {
  const tile = h("div", { class: "pimg noimg", "aria-hidden": "true" }, "🛍");
  if (!url) return tile;
  const img = h("img", { class: "pimg", src: url, alt: "", loading: "lazy", referrerpolicy: "no-referrer" });
  img.addEventListener("error", () => img.replaceWith(tile));
  return img;
}

function svg(tag, attrs = {}) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  return el;
}

function field(label, control, extra = {}) {
  return h("label", extra, label, control);
}

/** A sale's status as of now: an active sale whose time is up has ended. */
function saleStatus(sale) {
  if (!sale) return null;
  if (sale.status === "active" && new Date(sale.ends_at) <= Date.now()) return "ended";
  return sale.status;
}

// --- The page ---------------------------------------------------------------------------------

let page = null;
let renderHeader = () => {};

async function currentUser() {
  if (!session.token) return null;
  try {
    const me = await api("/me");
    session.save(session.token, me);
    return me;
  } catch (err) {
    if (err.status === 401) return null; // api() already forgot the expired token
    throw err;
  }
}

async function show() {
  if (page) page.destroy();
  page = null;
  const me = await currentUser();
  renderHeader();
  document.title = `${t("nav.host")} · ${t("app.name")}`;
  if (!me || !DRIVERS.includes(me.role)) {
    gate(me);
    return;
  }
  page = new HostPage(me);
  await page.start();
}

/** What anyone who is not a host or merchant sees. */
function gate(me) {
  clear(
    main,
    h(
      "section",
      { class: "card gate", id: "host-gate" },
      h("div", { class: "gate-mark", "aria-hidden": "true" }, "🎙"),
      h("h1", {}, t("nav.host")),
      h("p", {}, t("host.intro")),
      h("p", { class: "muted" }, t("auth.need_role", { role: t("host.roles") })),
      h(
        "div",
        { class: "row" },
        h(
          "button",
          {
            class: "primary",
            id: "host-sign-in",
            onclick: () => openSignIn(() => show(), { role: "host" }),
          },
          me ? t("host.switch_account") : t("auth.sign_in"),
        ),
      ),
    ),
  );
}

class HostPage {
  constructor(me) {
    this.me = me;
    this.streams = [];
    this.selectedId = Number(new URLSearchParams(window.location.search).get("stream")) || null;
    this.console = null;
    this.hosts = []; // merchants: the hosts linked to them
    this.showAllEnded = false;
    this.creating = false;
    this.createError = "";
    this.draft = {
      title: { kk: "", ru: "", uz: "" },
      languages: [...TEXT_LANGUAGES],
      scheduled: "",
      playback: "",
      merchant_id: me.streams_for && me.streams_for.length ? String(me.streams_for[0].id) : "",
      host_id: "",
    };
    this.el = {
      head: h("div", { class: "host-head" }),
      list: h("section", { class: "card host-streams", id: "host-streams" }),
      console: h("div", { class: "console", id: "console" }),
      create: h("section", { class: "card host-create", id: "new-stream" }),
    };
  }

  get merchants() {
    return this.me.role === "merchant" ? (this.me.merchant ? [this.me.merchant] : []) : this.me.streams_for || [];
  }

  /** Streams this user drives (the list endpoint has no owner filter). */
  owns(stream) {
    if (this.me.role === "merchant") return Boolean(this.me.merchant) && stream.merchant_id === this.me.merchant.id;
    return stream.host_id === this.me.id;
  }

  async start() {
    clear(main, this.el.head, h("div", { class: "host-layout" }, this.el.list, this.el.console, this.el.create));
    this.renderHead();
    if (this.me.role === "merchant") {
      this.hosts = await api("/merchants/me/hosts").catch(() => []);
    }
    await this.loadStreams();
    if (!this.selectedId || !this.streams.some((s) => s.id === this.selectedId)) {
      const pick = this.streams.find((s) => s.status === "live") || this.streams.find((s) => s.status === "scheduled");
      this.selectedId = pick ? pick.id : null;
    }
    this.renderList();
    this.renderCreate();
    this.openConsole();
  }

  destroy() {
    if (this.console) this.console.destroy();
    this.console = null;
  }

  async onPrefs() {
    document.title = `${t("nav.host")} · ${t("app.name")}`;
    this.renderHead();
    this.renderCreate();
    await this.loadStreams().catch((err) => toast(err.message, "error"));
    this.renderList();
    if (this.console) this.console.onPrefs();
    else this.openConsole();
  }

  async loadStreams() {
    const owned = async (status, maxPages) => {
      const out = [];
      for (let number = 1; number <= maxPages; number += 1) {
        const data = await api("/streams", { query: { status, page: number, mine: "true" } });
        out.push(...data.items.filter((s) => this.owns(s)));
        if (number >= data.pages) break;
      }
      return out;
    };
    const [live, scheduled, ended] = await Promise.all([owned("live", 5), owned("scheduled", 5), owned("ended", 2)]);
    const at = (iso) => (iso ? new Date(iso).getTime() : Infinity);
    scheduled.sort((a, b) => at(a.scheduled_at) - at(b.scheduled_at) || b.id - a.id);
    ended.sort((a, b) => at(b.ended_at) - at(a.ended_at));
    this.streams = [...live, ...scheduled, ...ended];
    // A stream named in the address but past the pages read (an old one) is still shown.
    if (this.selectedId && !this.streams.some((s) => s.id === this.selectedId)) {
      const named = await api(`/streams/${this.selectedId}`).catch(() => null);
      if (named && this.owns(named)) this.streams.push(named);
    }
  }

  /** A stream changed (started, ended, polled): keep the list in step. */
  updateStream(stream) {
    const index = this.streams.findIndex((s) => s.id === stream.id);
    if (index < 0) return;
    const before = this.streams[index];
    this.streams[index] = { ...before, ...stream };
    // Re-render only on a visible change: the poll must not swap rows under a click.
    const shown = (s) => [s.status, s.title, s.started_at, s.ended_at, s.scheduled_at].join("|");
    if (shown(before) !== shown(this.streams[index])) this.renderList();
  }

  select(id) {
    if (id === this.selectedId) return;
    this.selectedId = id;
    window.history.replaceState(null, "", id ? `/host?stream=${id}` : "/host");
    this.renderList();
    this.openConsole();
    // One column: the console is below the list, bring it up.
    if (window.matchMedia("(max-width: 1099px)").matches) this.showConsole();
  }

  showConsole() {
    this.el.console.scrollIntoView({ behavior: "smooth", block: "start" });
  }

  openConsole() {
    const stream = this.streams.find((s) => s.id === this.selectedId);
    if (this.console && stream && this.console.stream.id === stream.id) return;
    if (this.console) this.console.destroy();
    this.console = null;
    // Phones: with no stream at all, the list and the form below it say enough.
    this.el.console.classList.toggle("no-streams", !this.streams.length);
    if (!stream) {
      clear(
        this.el.console,
        h("section", { class: "card console-empty" }, h("div", { class: "gate-mark", "aria-hidden": "true" }, "📺"), h("p", { class: "muted" }, t("host.pick_stream"))),
      );
      return;
    }
    this.console = new StreamConsole(this, stream, this.el.console);
    this.console.start();
  }

  renderHead() {
    const names = this.merchants.map((m) => m.name).join(", ");
    clear(
      this.el.head,
      h("h1", {}, t("nav.host")),
      names ? h("p", { class: "muted", id: "host-merchant" }, t("host.for_merchant", { merchant: names })) : null,
    );
  }

  renderList() {
    const active = this.streams.filter((s) => s.status !== "ended");
    const ended = this.streams.filter((s) => s.status === "ended");
    const shownEnded = this.showAllEnded ? ended : ended.slice(0, ENDED_SHOWN);
    const row = (s) => {
      const selected = s.id === this.selectedId;
      return h(
        "li",
        {},
        h(
          "button",
          {
            type: "button",
            class: `stream-row${selected ? " selected" : ""}`,
            "aria-current": selected ? "true" : null,
            dataset: { streamId: s.id },
            onclick: () => this.select(s.id),
          },
          h("span", { class: "stream-row-top" }, badge(s.status), h("span", { class: "muted small" }, whenLine(s))),
          h("strong", { class: "stream-row-title" }, s.title),
        ),
      );
    };
    clear(
      this.el.list,
      h("h2", {}, t("host.streams")),
      this.streams.length
        ? h("ul", { class: "stream-list", id: "stream-list" }, [...active, ...shownEnded].map(row))
        : h("p", { class: "muted", id: "streams-empty" }, t("host.streams_empty")),
      ended.length > ENDED_SHOWN && !this.showAllEnded
        ? h(
            "button",
            { type: "button", class: "link", onclick: () => ((this.showAllEnded = true), this.renderList()) },
            t("host.ended_more", { count: ended.length }),
          )
        : null,
    );
    // Keep the selected stream in sight inside the list (it scrolls on its own).
    const list = this.el.list.querySelector("#stream-list");
    const selected = list && list.querySelector(".selected");
    if (selected) {
      const outer = list.getBoundingClientRect();
      const row = selected.getBoundingClientRect();
      if (row.bottom > outer.bottom) list.scrollTop += row.top - outer.top - 6;
      if (row.right > outer.right) list.scrollLeft += row.left - outer.left - 6;
    }
  }

  renderCreate() {
    const d = this.draft;
    const noMerchant = this.merchants.length === 0;
    const titles = TEXT_LANGUAGES.map((code) =>
      field(
        t("host.title_in", { language: LOCALE_NAMES[code] }),
        h("input", {
          id: `stream-title-${code}`,
          name: `title_${code}`,
          lang: code,
          maxlength: 200,
          value: d.title[code],
          oninput: (e) => (d.title[code] = e.target.value),
        }),
      ),
    );
    const languages = h(
      "fieldset",
      { class: "langs" },
      h("legend", {}, t("host.languages")),
      h(
        "div",
        { class: "lang-chips" },
        LOCALES.map((code) =>
          h(
            "label",
            { class: "check" },
            h("input", {
              type: "checkbox",
              id: `stream-lang-${code}`,
              value: code,
              checked: d.languages.includes(code),
              onchange: (e) => {
                d.languages = LOCALES.filter((c) => (c === code ? e.target.checked : d.languages.includes(c)));
              },
            }),
            h("span", {}, LOCALE_NAMES[code]),
          ),
        ),
      ),
    );
    const scheduled = field(
      t("host.scheduled_at"),
      h("input", {
        type: "datetime-local",
        id: "stream-scheduled",
        min: localInputValue(new Date()),
        value: d.scheduled,
        oninput: (e) => (d.scheduled = e.target.value),
      }),
    );
    const playback = field(
      t("host.playback_url"),
      h("input", {
        type: "url",
        id: "stream-playback-url",
        inputmode: "url",
        placeholder: "https://…/live.m3u8",
        value: d.playback,
        oninput: (e) => (d.playback = e.target.value),
      }),
    );
    const merchantPick =
      this.me.role === "host" && this.merchants.length > 1
        ? field(
            t("host.merchant"),
            h(
              "select",
              { id: "stream-merchant", onchange: (e) => (d.merchant_id = e.target.value) },
              this.merchants.map((m) => h("option", { value: m.id, selected: String(m.id) === d.merchant_id }, m.name)),
            ),
          )
        : null;
    const hostPick =
      this.me.role === "merchant" && this.hosts.length
        ? field(
            t("host.host"),
            h(
              "select",
              { id: "stream-host", onchange: (e) => (d.host_id = e.target.value) },
              h("option", { value: "", selected: !d.host_id }, t("host.host_me")),
              this.hosts.map((x) => h("option", { value: x.id, selected: String(x.id) === d.host_id }, x.display_name)),
            ),
          )
        : null;
    clear(
      this.el.create,
      h(
        "form",
        {
          id: "new-stream-form",
          onsubmit: (event) => {
            event.preventDefault();
            this.create();
          },
        },
        h("h2", {}, t("host.new_stream")),
        noMerchant ? h("p", { class: "notice" }, t("host.no_merchant", { email: this.me.email })) : null,
        titles,
        languages,
        scheduled,
        playback,
        merchantPick,
        hostPick,
        this.createError ? h("p", { class: "error", role: "alert", id: "create-error" }, this.createError) : null,
        h(
          "button",
          { type: "submit", class: "primary", id: "create-stream", disabled: noMerchant || this.creating },
          t("host.create"),
        ),
      ),
    );
  }

  async create() {
    const d = this.draft;
    const title = {};
    for (const code of TEXT_LANGUAGES) if (d.title[code].trim()) title[code] = d.title[code].trim();
    if (!Object.keys(title).length) {
      this.createError = t("host.title_required");
      this.renderCreate();
      document.getElementById("stream-title-kk")?.focus();
      return;
    }
    const body = { title, languages: d.languages.length ? d.languages : [...TEXT_LANGUAGES] };
    if (d.scheduled) body.scheduled_at = new Date(d.scheduled).toISOString();
    if (d.playback.trim()) body.playback_url = d.playback.trim();
    if (this.me.role === "host" && this.merchants.length > 1 && d.merchant_id) body.merchant_id = Number(d.merchant_id);
    if (this.me.role === "merchant" && d.host_id) body.host_id = Number(d.host_id);
    this.creating = true;
    this.createError = "";
    this.renderCreate();
    const selectedBefore = this.selectedId;
    try {
      const stream = await api("/streams", { method: "POST", body });
      this.draft = { ...d, title: { kk: "", ru: "", uz: "" }, scheduled: "", playback: "" };
      toast(t("host.created"), "ok");
      await this.loadStreams();
      if (!this.streams.some((s) => s.id === stream.id)) this.streams.unshift(stream);
      this.creating = false;
      this.renderCreate();
      // Open the new stream, unless the user went to another one while it was being created.
      if (this.selectedId === selectedBefore) {
        this.select(stream.id);
        this.showConsole(); // the form may sit below the fold: show where the new stream is
      } else {
        this.renderList();
      }
    } catch (err) {
      this.creating = false;
      this.createError = err.message;
      this.renderCreate();
    }
  }
}

// --- One stream's console ------------------------------------------------------------------

class StreamConsole {
  constructor(page, stream, root) {
    this.page = page;
    this.me = page.me;
    this.stream = stream;
    this.root = root;
    this.connection = "connecting";
    this.closedCode = null;
    this.viewers = null; // from the room; null until the welcome
    this.orders = 0; // sum of order_placed counts seen in the room
    this.ticker = []; // newest first
    this.chat = []; // {seq, user, text} or {seq, system, text}
    this.restrictions = new Map(); // user id -> "mute" | "ban"
    this.pinned = stream.pinned_product;
    this.sale = stream.flash_sale;
    this.announcement = null;
    this.stats = stream.stats || null;
    this.samples = [];
    this.products = { q: "", items: [], total: 0, loaded: false, error: "" };
    this.productCache = new Map(); // id -> card, for the sale's product picker
    this.productsRequest = 0;
    this.saleDraft = { product_id: "", amount: "", currency: prefs.currency, quantity: "20", duration: "300", limit: "" };
    this.announceDraft = { kk: "", ru: "", uz: "" };
    this.busy = new Set();
    this.dirty = new Set();
    this.frameRequested = false;
    this.closed = false;
    this.timers = [];
    this.el = {};
    if (this.pinned) this.productCache.set(this.pinned.id, this.pinned);
    this.socket = new RoomSocket({
      streamId: stream.id,
      token: async () => session.token,
      prefs: () => ({ locale: prefs.locale, currency: prefs.currency }),
      onFrame: (frame) => this.onFrame(frame),
      onState: (state) => {
        this.connection = state;
        this.invalidate("head", "chatForm");
      },
    });
    // Replay the room from its first event: the chat to moderate and the orders placed before
    // this page opened (as far as the room's history reaches; the welcome says if it does not).
    this.socket.lastSeq = 0;
  }

  get live() {
    return this.stream.status === "live";
  }

  start() {
    this.layout();
    this.socket.connect();
    this.loadProducts();
    this.refresh();
    this.timers.push(setInterval(() => this.refresh(), POLL_MS));
    this.timers.push(setInterval(() => this.sample(), SAMPLE_MS));
    this.timers.push(setInterval(() => this.tick(), 1000));
    window.livecommerce = { room: this.socket, console: this };
  }

  destroy() {
    this.closed = true;
    this.socket.close();
    for (const timer of this.timers) clearInterval(timer);
  }

  onPrefs() {
    this.saleDraft.currency = this.saleDraft.amount ? this.saleDraft.currency : prefs.currency;
    this.layout();
    this.socket.reconnect(); // frames come anew in the new language and currency
    this.loadProducts();
    this.refresh();
  }

  // --- Rendering, batched: a replay of hundreds of events renders once ---------------------

  invalidate(...parts) {
    for (const part of parts) this.dirty.add(part);
    if (this.frameRequested || this.closed) return;
    this.frameRequested = true;
    const flush = () => {
      this.frameRequested = false;
      const parts = [...this.dirty];
      this.dirty.clear();
      for (const part of parts) this.render(part);
    };
    // Animation frames pause in a background tab; a timer still renders there.
    if (document.hidden) setTimeout(flush, 100);
    else requestAnimationFrame(flush);
  }

  render(part) {
    if (this.closed) return;
    const renderers = {
      head: () => this.renderHead(),
      figures: () => this.renderFigures(),
      chart: () => this.renderChart(),
      products: () => this.renderProducts(),
      sale: () => this.renderSale(),
      saleForm: () => this.renderSaleForm(),
      announce: () => this.renderAnnounce(),
      chat: () => this.renderChat(),
      chatForm: () => this.renderChatForm(),
      ticker: () => this.renderTicker(),
    };
    renderers[part]();
  }

  renderAll() {
    for (const part of ["head", "figures", "chart", "products", "sale", "saleForm", "announce", "chat", "chatForm", "ticker"]) {
      this.render(part);
    }
  }

  /** The cards and their form controls (built once per language; drafts survive). */
  layout() {
    const el = (this.el = {});
    el.head = h("section", { class: "card console-head", id: "console-head" });
    el.stats = h("div", { class: "stats", id: "host-stats" });
    el.statsNote = h("p", { class: "muted small", id: "host-sales-note" });
    el.legend = h("div", { class: "legend small" });
    el.chart = h("div", { class: "chart-box", id: "host-chart" });
    el.chartAxis = h("div", { class: "chart-axis muted small" });
    const figures = h(
      "section",
      { class: "card figures", id: "host-figures" },
      el.stats,
      el.statsNote,
      h("div", { class: "chart-head" }, h("h3", {}, t("host.chart.title")), el.legend),
      el.chart,
      el.chartAxis,
    );

    // Products and pins
    el.onAir = h("div", { class: "on-air", id: "host-on-air" });
    el.liveHint = h("p", { class: "notice small", hidden: true }, t("host.not_live_hint"));
    el.search = h("input", {
      type: "search",
      id: "product-search",
      placeholder: t("host.search"),
      "aria-label": t("host.search"),
      value: this.products.q,
      autocomplete: "off",
      oninput: (e) => {
        clearTimeout(this.searchTimer);
        this.searchTimer = setTimeout(() => {
          this.products.q = e.target.value.trim();
          this.loadProducts();
        }, 250);
      },
    });
    el.productList = h("ul", { class: "product-list", id: "product-list" });
    el.productsNote = h("p", { class: "muted small" });
    const products = h(
      "section",
      { class: "card products-card", id: "host-products" },
      h("h2", {}, t("host.products")),
      el.onAir,
      el.liveHint,
      el.search,
      el.productList,
      el.productsNote,
    );

    // Flash sale
    const s = this.saleDraft;
    el.saleStatus = h("div", { class: "sale-status", id: "host-sale-status" });
    el.saleProduct = h("select", {
      id: "sale-product",
      required: true,
      onchange: (e) => this.pickSaleProduct(e.target.value, false),
    });
    el.salePrice = h("input", {
      id: "sale-price",
      type: "number",
      min: "0.01",
      step: "0.01",
      inputmode: "decimal",
      required: true,
      value: s.amount,
      oninput: (e) => (s.amount = e.target.value),
    });
    el.saleCurrency = h(
      "select",
      { id: "sale-currency", "aria-label": t("pick.currency"), onchange: (e) => (s.currency = e.target.value) },
      CURRENCIES.map((code) => h("option", { value: code, selected: code === s.currency }, code)),
    );
    const number = (id, key, attrs) =>
      h("input", { id, type: "number", step: "1", inputmode: "numeric", value: s[key], oninput: (e) => (s[key] = e.target.value), ...attrs });
    el.saleButton = h("button", { type: "submit", class: "primary", id: "start-sale" }, `⚡ ${t("host.sale.start")}`);
    el.saleForm = h(
      "form",
      {
        id: "sale-form",
        class: "sale-form",
        onsubmit: (event) => {
          event.preventDefault();
          this.startSale();
        },
      },
      field(t("host.sale.product"), el.saleProduct, { class: "wide" }),
      h("label", {}, t("host.sale.price"), h("div", { class: "money-input" }, el.salePrice, el.saleCurrency)),
      field(t("host.sale.quantity"), number("sale-quantity", "quantity", { min: 1, max: 1000000, required: true })),
      field(t("host.sale.duration"), number("sale-duration", "duration", { min: 10, max: 21600, required: true })),
      field(t("host.sale.limit"), number("sale-limit", "limit", { min: 1, max: 1000000 })),
      h("div", { class: "wide" }, el.saleButton),
    );
    el.saleCard = h("section", { class: "card sale-card", id: "host-sale" }, h("h2", {}, `⚡ ${t("sale.title")}`), el.saleStatus, el.saleForm);

    // Announcement
    const a = this.announceDraft;
    el.announceLast = h("p", { class: "muted small", id: "announce-last" });
    el.announceButton = h("button", { type: "submit", class: "primary", id: "announce-send" }, `📣 ${t("host.announce.send")}`);
    el.announceForm = h(
      "form",
      {
        id: "announce-form",
        onsubmit: (event) => {
          event.preventDefault();
          this.announce();
        },
      },
      TEXT_LANGUAGES.map((code) =>
        field(
          LOCALE_NAMES[code],
          h("textarea", {
            id: `announce-${code}`,
            lang: code,
            rows: 2,
            maxlength: 500,
            oninput: (e) => (a[code] = e.target.value),
          }),
        ),
      ),
      h("div", { class: "row" }, el.announceButton),
    );
    // A textarea's text is its content, not an attribute.
    for (const code of TEXT_LANGUAGES) el.announceForm.querySelector(`#announce-${code}`).value = a[code];
    el.announceCard = h(
      "section",
      { class: "card", id: "host-announce" },
      h("h2", {}, `📣 ${t("host.announce.title")}`),
      h("p", { class: "muted small" }, t("host.announce.hint")),
      el.announceForm,
      el.announceLast,
    );

    // Chat
    el.chatCount = h("span", { class: "muted small", id: "host-chat-count" });
    el.chatList = h("ol", { class: "chat-list", id: "host-chat", "aria-live": "polite" });
    el.chatInput = h("input", {
      id: "host-chat-input",
      maxlength: 500,
      placeholder: t("host.chat.placeholder"),
      "aria-label": t("host.chat.placeholder"),
      autocomplete: "off",
    });
    el.chatSend = h("button", { type: "submit" }, t("chat.send"));
    el.chatForm = h(
      "form",
      {
        id: "host-chat-form",
        onsubmit: (event) => {
          event.preventDefault();
          const text = el.chatInput.value.trim();
          if (text && this.socket.send({ type: "chat", data: { text } })) el.chatInput.value = "";
        },
      },
      el.chatInput,
      el.chatSend,
    );
    const chat = h(
      "section",
      { class: "card host-chat", id: "host-chat-card" },
      h("div", { class: "row" }, h("h2", { class: "grow" }, t("chat.title")), el.chatCount),
      el.chatList,
      el.chatForm,
    );

    // Order ticker
    el.ticker = h("ol", { class: "ticker-list", id: "host-ticker" });
    const ticker = h("section", { class: "card", id: "host-ticker-card" }, h("h2", {}, `🛍 ${t("ticker.title")}`), el.ticker);

    clear(
      this.root,
      el.head,
      figures,
      h("div", { class: "cols" }, h("div", { class: "col" }, products, el.saleCard, el.announceCard), h("div", { class: "col" }, chat, ticker)),
    );
    this.renderAll();
  }

  renderHead() {
    const s = this.stream;
    const state =
      this.closedCode !== null
        ? h("span", { class: "conn closed", id: "host-connection" }, t("host.state.closed"))
        : h(
            "span",
            { class: `conn ${this.connection}`, id: "host-connection" },
            this.connection === "live"
              ? t("host.state.live")
              : this.connection === "offline"
                ? t("live.reconnecting")
                : t("host.state.connecting"),
          );
    const languages = (s.languages || []).map((code) => LOCALE_NAMES[code] || code).join(" · ");
    const hostedBy = this.me.role === "merchant" && s.host_name ? t("host.hosted_by", { name: s.host_name }) : null;
    clear(
      this.el.head,
      h(
        "div",
        { class: "head-main" },
        h(
          "div",
          { class: "head-title" },
          h("div", { class: "row" }, h("span", { id: "console-status" }, badge(s.status)), state),
          h("h2", { id: "console-title" }, s.title),
          h("p", { class: "muted small" }, [whenLine(s), languages, hostedBy].filter(Boolean).join(" · ")),
        ),
        h(
          "div",
          { class: "head-actions" },
          h("a", { class: "button", href: `/live/${s.id}`, target: "_blank", rel: "noopener", id: "open-viewer" }, `↗ ${t("host.open_viewer")}`),
          s.status === "scheduled"
            ? h("button", { class: "primary", id: "start-stream", disabled: this.busy.has("status"), onclick: () => this.goLive() }, `● ${t("host.start")}`)
            : null,
          s.status !== "ended"
            ? h(
                "button",
                { class: "danger", id: "end-stream", disabled: this.busy.has("status"), onclick: () => this.confirmEnd() },
                s.status === "live" ? t("host.end") : t("host.cancel_stream"),
              )
            : null,
        ),
      ),
      s.status === "ended" ? h("p", { class: "notice small" }, t("live.ended")) : null,
    );
  }

  renderFigures() {
    const stats = this.stats;
    const sales = stats ? stats.sales : null;
    const pending = () => h("span", { class: "pending" }, t("host.not_rolled_up"));
    const stat = (id, label, value, extra = "") =>
      h("div", { class: `stat ${extra}` }, h("span", { class: "muted small" }, label), h("b", { id }, value));
    const viewers = this.viewers ?? (stats ? stats.viewer_count : 0);
    const revenue = !sales
      ? pending()
      : sales.gmv.length
        ? sales.gmv.map((m) => h("span", { class: "money", dataset: { currency: m.currency } }, m.formatted))
        : h("span", { class: "pending" }, t("host.no_sales"));
    clear(
      this.el.stats,
      stat("host-viewers", t("host.stat.viewers"), String(viewers), "key viewers-stat"),
      stat("orders-count", t("host.stat.orders"), String(this.orders), "key orders-stat"),
      stat("host-revenue", t("host.stat.revenue"), revenue, "revenue"),
      stat("host-unique", t("host.stat.unique"), sales ? String(sales.unique_viewers) : pending()),
      stat("host-peak", t("host.stat.peak"), stats ? String(Math.max(stats.peak_viewers, viewers)) : "–"),
    );
    this.renderChatCount();
    this.el.statsNote.textContent = sales
      ? t("host.sales_as_of", { time: when(sales.rolled_up_at) })
      : t("host.sales_pending");
  }

  renderChart() {
    const samples = this.samples;
    const last = samples.at(-1);
    const maxViewers = Math.max(1, ...samples.map((s) => s.viewers));
    const maxOrders = Math.max(1, ...samples.map((s) => s.orders));
    clear(
      this.el.legend,
      h("span", { class: "key viewers" }, `${t("host.chart.viewers")} ${last ? last.viewers : 0}`, h("span", { class: "muted" }, ` / ${maxViewers}`)),
      h("span", { class: "key orders" }, `${t("host.chart.orders")} ${last ? last.orders : 0}`),
    );
    if (samples.length < 2) {
      clear(this.el.chart, h("p", { class: "muted small chart-wait" }, t("host.chart.waiting")));
      clear(this.el.chartAxis);
      return;
    }
    // Each line is scaled to its own maximum: viewers in the hundreds and orders in the tens
    // both stay readable; the legend gives the figures.
    const W = 300;
    const H = 100;
    const x = (i) => ((i / (samples.length - 1)) * W).toFixed(1);
    const y = (value, max) => (H - 4 - (value / max) * (H - 8)).toFixed(1);
    const chart = svg("svg", {
      class: "chart",
      viewBox: `0 0 ${W} ${H}`,
      preserveAspectRatio: "none",
      role: "img",
      "aria-label": t("host.chart.title"),
    });
    for (const level of [0.25, 0.5, 0.75]) {
      chart.append(svg("line", { class: "grid", x1: 0, x2: W, y1: H * level, y2: H * level, "vector-effect": "non-scaling-stroke" }));
    }
    const line = (cls, key, max) =>
      svg("polyline", {
        class: cls,
        points: samples.map((s, i) => `${x(i)},${y(s[key], max)}`).join(" "),
        "vector-effect": "non-scaling-stroke",
        "stroke-linejoin": "round",
      });
    chart.append(line("viewers", "viewers", maxViewers), line("orders", "orders", maxOrders));
    clear(this.el.chart, chart);
    clear(this.el.chartAxis, h("span", {}, clock(new Date(samples[0].at))), h("span", {}, clock(new Date(last.at))));
  }

  renderProducts() {
    const live = this.live;
    this.el.liveHint.hidden = live || this.stream.status === "ended";
    const ended = this.stream.status === "ended";
    const pinned = ended ? null : this.pinned; // nothing is on air once the stream is over
    clear(
      this.el.onAir,
      pinned
        ? h(
            "div",
            { class: "on-air-card", dataset: { productId: pinned.id } },
            productImage(pinned.image_url),
            h(
              "div",
              { class: "grow" },
              h("span", { class: "badge live" }, t("host.on_air")),
              h("strong", { class: "block", id: "host-pinned-title" }, pinned.title),
              h("span", { class: "muted small" }, pinned.price.formatted),
            ),
            h("button", { class: "chip", id: "unpin", disabled: !live, onclick: () => this.pin(null) }, t("host.unpin")),
          )
        : ended
          ? null
          : h("p", { class: "muted small", id: "host-nothing-pinned" }, t("host.nothing_pinned")),
    );
    const { items, error, loaded, total } = this.products;
    if (error) {
      clear(this.el.productList, h("li", { class: "error small" }, error));
    } else if (loaded && !items.length) {
      clear(this.el.productList, h("li", { class: "muted small empty" }, t("host.no_products")));
    } else {
      clear(
        this.el.productList,
        items.map((p) => {
          const onAir = pinned && pinned.id === p.id;
          return h(
            "li",
            { class: `product-row${onAir ? " on-air-row" : ""}`, dataset: { productId: p.id } },
            productImage(p.image_urls && p.image_urls[0]),
            h(
              "div",
              { class: "product-text" },
              h("strong", {}, p.title),
              h(
                "span",
                { class: "small" },
                h("b", {}, p.price.formatted),
                h("span", { class: "muted" }, ` · ${p.sku}`),
                p.available ? null : h("span", { class: "badge ended" }, t("host.unavailable")),
              ),
            ),
            h(
              "div",
              { class: "product-actions" },
              h(
                "button",
                {
                  class: `chip pin${onAir ? " on" : ""}`,
                  dataset: { productId: p.id },
                  disabled: !live || onAir || this.busy.has("pin"),
                  onclick: () => this.pin(p),
                },
                onAir ? `● ${t("host.on_air")}` : `📌 ${t("host.pin")}`,
              ),
              ended
                ? null
                : h(
                    "button",
                    { class: "chip sale-pick", dataset: { productId: p.id }, onclick: () => this.pickSaleProduct(String(p.id), true) },
                    `⚡ ${t("host.sale.pick")}`,
                  ),
            ),
          );
        }),
      );
    }
    this.el.productsNote.textContent =
      loaded && total > items.length ? t("host.more_products", { shown: items.length, total }) : "";
  }

  renderSale() {
    const sale = this.sale;
    // Ending a stream stops its sale (the room hears only that the stream ended).
    const status = this.stream.status === "ended" && sale ? "ended" : saleStatus(sale);
    const active = status === "active";
    const ended = this.stream.status === "ended";
    this.el.saleCard.hidden = ended && !sale;
    this.el.saleForm.hidden = active || ended;
    this.el.saleButton.disabled = !this.live || this.busy.has("sale");
    if (!sale) {
      clear(this.el.saleStatus);
      return;
    }
    const sold = sale.quantity - sale.remaining;
    if (!active) {
      clear(
        this.el.saleStatus,
        h(
          "p",
          { class: "muted small last-sale", id: "host-sale-last" },
          t("host.sale.last", { product: sale.product.title, sold, quantity: sale.quantity }),
        ),
      );
      return;
    }
    const left = Math.max(0, Math.round((new Date(sale.ends_at) - Date.now()) / 1000));
    const share = sale.quantity ? (100 * sale.remaining) / sale.quantity : 0;
    clear(
      this.el.saleStatus,
      h(
        "div",
        { class: "sale-live", dataset: { saleId: sale.id } },
        h(
          "div",
          { class: "row" },
          h("strong", { class: "grow" }, sale.product.title),
          h("span", { class: "countdown", id: "host-sale-countdown" }, `${Math.floor(left / 60)}:${pad(left % 60)}`),
        ),
        h(
          "div",
          { class: "row" },
          h("span", { class: "price" }, sale.price.formatted),
          h("span", { class: "muted small" }, t("host.sale.regular", { price: sale.product.price.formatted })),
        ),
        h("div", { class: "meter", "aria-hidden": "true" }, h("span", { style: { width: `${share}%` } })),
        h(
          "p",
          { class: "small row" },
          h("span", { class: "grow", id: "host-sale-remaining" }, t("sale.left", { remaining: sale.remaining, quantity: sale.quantity })),
          h("span", { class: "muted" }, t("host.sale.sold", { sold })),
        ),
        sale.per_customer_limit ? h("p", { class: "muted small" }, t("sale.limit", { limit: sale.per_customer_limit })) : null,
        h(
          "button",
          { type: "button", id: "end-sale", disabled: this.busy.has("sale"), onclick: () => this.endSale() },
          t("host.sale.end"),
        ),
      ),
    );
  }

  /** The sale form's product picker: the products listed, the pinned one, and the chosen one. */
  renderSaleForm() {
    const chosen = this.saleDraft.product_id;
    const cards = new Map();
    if (this.pinned) cards.set(this.pinned.id, this.pinned);
    for (const p of this.products.items) cards.set(p.id, this.productCache.get(p.id));
    if (chosen && this.productCache.has(Number(chosen))) cards.set(Number(chosen), this.productCache.get(Number(chosen)));
    clear(
      this.el.saleProduct,
      h("option", { value: "", selected: !chosen, disabled: true }, t("host.sale.choose")),
      [...cards.values()].map((p) =>
        h("option", { value: p.id, selected: String(p.id) === chosen }, `${p.title} · ${p.price.formatted}`),
      ),
    );
  }

  renderAnnounce() {
    this.el.announceCard.hidden = this.stream.status === "ended";
    this.el.announceButton.disabled = !this.live || this.busy.has("announce");
    this.el.announceLast.textContent = this.announcement ? t("host.announce.last", { text: this.announcement }) : "";
  }

  chatItem(m) {
    if (m.system) return h("li", { class: "system", dataset: { seq: m.seq } }, m.text);
    const li = h("li", { class: "msg", dataset: { seq: m.seq, userId: m.user.id } });
    this.fillChatItem(li, m);
    return li;
  }

  fillChatItem(li, m) {
    const self = m.user.id === this.me.id;
    const driver = self || m.user.id === this.stream.host_id;
    const restriction = this.restrictions.get(m.user.id);
    const action = (cls, label, fn) => h("button", { type: "button", class: `chip mini ${cls}`, onclick: fn }, label);
    clear(
      li,
      h(
        "div",
        { class: "msg-body" },
        h("b", { class: "msg-name" }, m.user.name),
        self ? h("span", { class: "muted small you" }, `(${t("host.chat.you")})`) : null,
        restriction ? h("span", { class: `badge restricted ${restriction}` }, t(RESTRICTED[restriction])) : null,
        h("span", { class: "msg-text" }, m.text),
      ),
      h(
        "div",
        { class: "msg-actions" },
        action("chat-delete", t("host.chat.delete"), () => this.deleteChat(m)),
        driver
          ? null
          : restriction === "mute"
            ? action("chat-unmute", t("host.chat.unmute"), () => this.moderate(m.user, "unmute"))
            : restriction === "ban"
              ? null
              : action("chat-mute", t("host.chat.mute"), () => this.moderate(m.user, "mute")),
        driver
          ? null
          : restriction === "ban"
            ? action("chat-unban", t("host.chat.unban"), () => this.moderate(m.user, "unban"))
            : action("chat-ban danger", t("host.chat.ban"), () => this.moderate(m.user, "ban")),
      ),
    );
  }

  renderChat() {
    const list = this.el.chatList;
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    clear(
      list,
      this.chat.length ? this.chat.map((m) => this.chatItem(m)) : h("li", { class: "muted small empty" }, t("host.chat.empty")),
    );
    this.renderChatCount();
    if (atBottom) list.scrollTop = list.scrollHeight;
  }

  /** Messages in the stream so far (the server's count lags a little behind the room). */
  renderChatCount() {
    const seen = this.chat.filter((m) => !m.system).length;
    const count = Math.max(seen, this.stats ? this.stats.chat_messages : 0);
    this.el.chatCount.textContent = count ? t("host.chat.count", { count }) : "";
  }

  /** A new chat line: appended in place so a host's click on another line is never lost. */
  appendChat(m) {
    this.chat.push(m);
    if (this.dirty.has("chat")) return; // a full render is coming anyway
    const list = this.el.chatList;
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    list.querySelector(".empty")?.remove();
    list.append(this.chatItem(m));
    if (this.chat.length > MAX_CHAT) {
      const gone = this.chat.splice(0, this.chat.length - MAX_CHAT);
      for (const old of gone) list.querySelector(`li[data-seq="${old.seq}"]`)?.remove();
    }
    this.renderChatCount();
    if (atBottom) list.scrollTop = list.scrollHeight;
  }

  renderChatForm() {
    const can = this.live && this.connection === "live";
    this.el.chatInput.disabled = !can;
    this.el.chatSend.disabled = !can;
  }

  renderTicker() {
    clear(
      this.el.ticker,
      this.ticker.length
        ? this.ticker.map((o) =>
            h(
              "li",
              {},
              h("span", { class: "muted small time" }, clock(new Date(o.at))),
              h(
                "span",
                {},
                o.more
                  ? t("ticker.more", { count: o.more })
                  : t("ticker.entry", { buyer: o.buyer, product: o.product }) + (o.quantity > 1 ? ` ×${o.quantity}` : ""),
              ),
            ),
          )
        : h("li", { class: "muted small empty" }, t("host.ticker.empty")),
    );
  }

  // --- Room frames --------------------------------------------------------------------------

  onFrame(frame) {
    if (this.closed) return;
    const data = frame.data || {};
    switch (frame.type) {
      case "welcome": {
        this.viewers = data.viewer_count;
        if (data.resumed !== true) {
          // The welcome is the whole state (first connection without history, or a new language).
          this.pinned = data.pinned_product;
          this.mergeSale(data.flash_sale);
        }
        if (data.stream && data.stream.status && data.stream.status !== this.stream.status) {
          this.stream = { ...this.stream, status: data.stream.status };
          this.page.updateStream(this.stream);
        }
        if (!this.samples.length) this.sample();
        this.invalidate("head", "figures", "products", "sale", "saleForm", "announce", "chatForm");
        break;
      }
      case "viewer_count":
        this.viewers = data.count;
        this.invalidate("figures");
        break;
      case "order_placed": {
        this.orders += data.count || (data.orders || []).length;
        const entries = (data.orders || []).map((o) => ({ at: frame.ts, buyer: o.buyer, product: o.product, quantity: o.quantity }));
        const more = (data.count || 0) - entries.length;
        if (more > 0) entries.push({ at: frame.ts, more });
        this.ticker = [...entries, ...this.ticker].slice(0, MAX_TICKER);
        this.invalidate("figures", "ticker");
        break;
      }
      case "chat":
        this.appendChat({ seq: frame.seq, user: data.user, text: data.text });
        break;
      case "chat_deleted":
        this.removeChat(data.seq);
        break;
      case "moderation":
        this.restrict(data.user_id, data.action);
        break;
      case "product_pinned":
        this.pinned = data.product;
        if (data.product) this.productCache.set(data.product.id, data.product);
        this.invalidate("products", "saleForm");
        break;
      case "flash_sale":
        this.mergeSale(data);
        this.invalidate("sale");
        break;
      case "announcement":
        this.announcement = data.text;
        this.appendChat({ seq: frame.seq, system: true, text: `📣 ${data.text}` });
        this.invalidate("announce");
        break;
      case "stream_status":
        this.stream = { ...this.stream, status: data.status };
        if (data.text) this.appendChat({ seq: frame.seq, system: true, text: data.text });
        this.page.updateStream(this.stream);
        this.invalidate("head", "products", "sale", "announce", "chatForm");
        this.refresh();
        break;
      case "error":
        if (data.code === "invalid_token") {
          show();
          return;
        }
        toast(data.message || t("common.error"), "error");
        break;
      case "closed":
        this.closedCode = data.code;
        this.invalidate("head", "chatForm");
        break;
      default:
        break;
    }
  }

  /** Keep the lowest ``remaining`` seen for a sale: two processes' updates may cross. */
  mergeSale(next) {
    const current = this.sale;
    if (!next) {
      // No running sale: keep the last one on screen as a summary.
      if (current && saleStatus(current) === "active") this.sale = { ...current, status: "ended" };
      return;
    }
    if (current && current.id === next.id) {
      if (current.status !== "active" && next.status === "active") return; // an older update
      if (next.status === "active") next = { ...next, remaining: Math.min(current.remaining, next.remaining) };
    }
    this.sale = next;
    if (next.product) this.productCache.set(next.product.id, next.product);
  }

  removeChat(seq) {
    this.chat = this.chat.filter((m) => m.seq !== seq);
    if (this.dirty.has("chat")) return;
    this.el.chatList.querySelector(`li[data-seq="${seq}"]`)?.remove();
    this.renderChatCount();
    if (!this.chat.length) this.renderChat();
  }

  restrict(userId, action) {
    if (action === "mute" || action === "ban") this.restrictions.set(userId, action);
    else if (this.restrictions.get(userId) === action.replace(/^un/, "")) this.restrictions.delete(userId);
    if (this.dirty.has("chat")) return;
    for (const li of this.el.chatList.querySelectorAll(`li[data-user-id="${userId}"]`)) {
      const m = this.chat.find((x) => String(x.seq) === li.dataset.seq);
      if (m) this.fillChatItem(li, m);
    }
  }

  // --- Timers -------------------------------------------------------------------------------

  sample() {
    this.samples.push({ at: Date.now(), viewers: this.viewers ?? 0, orders: this.orders });
    if (this.samples.length > MAX_SAMPLES) this.samples.shift();
    this.invalidate("chart");
  }

  tick() {
    if (this.sale && this.sale.status === "active") this.invalidate("sale");
  }

  /** Stream and stats from the API (sales are rolled up by a worker, so this polls). */
  async refresh() {
    try {
      const stream = await api(`/streams/${this.stream.id}`);
      if (this.closed) return;
      this.stream = stream;
      this.stats = stream.stats;
      if (this.viewers === null) this.viewers = stream.stats.viewer_count;
      if (this.connection !== "live") {
        // The room is the fresher source while connected; otherwise take the API's word.
        this.pinned = stream.pinned_product;
        this.mergeSale(stream.flash_sale);
      }
      this.page.updateStream(stream);
      this.invalidate("head", "figures", "products", "sale", "announce", "chatForm");
    } catch {
      // A missed poll is retried on the next tick; the room keeps the figures moving.
    }
  }

  // --- Actions ------------------------------------------------------------------------------

  async call(key, parts, fn) {
    if (this.busy.has(key)) return;
    this.busy.add(key);
    this.invalidate(...parts);
    try {
      await fn();
    } catch (err) {
      toast(err.message || t("common.error"), "error");
    } finally {
      this.busy.delete(key);
      this.invalidate(...parts);
    }
  }

  goLive() {
    return this.call("status", ["head"], async () => {
      const stream = await api(`/streams/${this.stream.id}/start`, { method: "POST" });
      this.stream = { ...stream, stats: this.stream.stats };
      this.page.updateStream(stream);
      toast(t("host.started"), "ok");
      this.invalidate("products", "sale", "announce", "chatForm");
    });
  }

  confirmEnd() {
    const dialog = h("dialog", { class: "sheet", id: "end-stream-dialog" });
    const live = this.live;
    dialog.addEventListener("close", () => dialog.remove());
    clear(
      dialog,
      h(
        "form",
        {
          method: "dialog",
          onsubmit: (event) => {
            event.preventDefault();
            dialog.close();
            this.endStream();
          },
        },
        h("h2", {}, t("host.end_title")),
        h("p", {}, t("host.end_text")),
        h(
          "div",
          { class: "row" },
          h("button", { type: "submit", class: "danger", id: "end-stream-confirm" }, live ? t("host.end") : t("host.cancel_stream")),
          h("button", { type: "button", class: "link", onclick: () => dialog.close() }, t("common.cancel")),
        ),
      ),
    );
    document.body.append(dialog);
    dialog.showModal();
  }

  endStream() {
    return this.call("status", ["head"], async () => {
      const stream = await api(`/streams/${this.stream.id}/end`, { method: "POST" });
      this.stream = { ...stream, stats: this.stream.stats };
      this.page.updateStream(stream);
      toast(t("host.ended"), "ok");
      this.invalidate("products", "sale", "announce", "chatForm");
    });
  }

  async loadProducts() {
    const request = ++this.productsRequest;
    try {
      const result = await api("/products", {
        query: { q: this.products.q || undefined, merchant_id: this.stream.merchant_id, page_size: PRODUCTS_PAGE },
      });
      if (this.closed || request !== this.productsRequest) return;
      for (const p of result.items) {
        this.productCache.set(p.id, { id: p.id, sku: p.sku, title: p.title, price: p.price, image_url: p.image_urls[0] || null });
      }
      this.products = { ...this.products, items: result.items, total: result.total, loaded: true, error: "" };
    } catch (err) {
      if (this.closed || request !== this.productsRequest) return;
      this.products = { ...this.products, items: [], loaded: true, error: err.message };
    }
    this.invalidate("products", "saleForm");
  }

  pin(product) {
    return this.call("pin", ["products"], async () => {
      const stream = await api(`/streams/${this.stream.id}/pins`, {
        method: "POST",
        body: { product_id: product ? product.id : null },
      });
      this.pinned = stream.pinned_product;
      toast(product ? t("host.pinned_toast", { product: product.title }) : t("host.unpinned"), "ok");
      this.invalidate("saleForm");
    });
  }

  /** Choose the sale's product (from its row's button or the picker) and suggest 20 % off. */
  pickSaleProduct(id, fromList) {
    const card = this.productCache.get(Number(id));
    this.saleDraft.product_id = String(id);
    if (card && (fromList || !this.saleDraft.amount)) {
      const amount = Number(card.price.amount) * 0.8;
      const whole = Number.isInteger(Number(card.price.amount)) || Number(card.price.amount) >= 1000;
      this.saleDraft.amount = whole ? String(Math.round(amount)) : amount.toFixed(2);
      this.saleDraft.currency = card.price.currency;
      this.el.salePrice.value = this.saleDraft.amount;
      this.el.saleCurrency.value = this.saleDraft.currency;
    }
    this.renderSaleForm();
    if (fromList) {
      this.el.saleForm.closest("section").scrollIntoView({ behavior: "smooth", block: "center" });
      this.el.salePrice.focus({ preventScroll: true });
    }
  }

  startSale() {
    const d = this.saleDraft;
    if (!d.product_id) {
      toast(t("host.sale.need_product"), "error");
      return undefined;
    }
    const body = {
      product_id: Number(d.product_id),
      price: { amount: String(d.amount).replace(",", "."), currency: d.currency },
      quantity: Number(d.quantity),
      duration_s: Number(d.duration),
    };
    if (String(d.limit).trim()) body.per_customer_limit = Number(d.limit);
    return this.call("sale", ["sale"], async () => {
      const sale = await api(`/streams/${this.stream.id}/flash-sales`, { method: "POST", body });
      this.mergeSale(sale);
      toast(t("host.sale.started"), "ok");
    });
  }

  endSale() {
    const sale = this.sale;
    if (!sale) return undefined;
    return this.call("sale", ["sale"], async () => {
      const ended = await api(`/streams/${this.stream.id}/flash-sales/${sale.id}/end`, { method: "POST" });
      this.mergeSale(ended);
      toast(t("host.sale.ended"), "ok");
    });
  }

  announce() {
    const text = {};
    for (const code of TEXT_LANGUAGES) {
      const value = this.announceDraft[code].trim();
      if (value) text[code] = value;
    }
    if (!Object.keys(text).length) {
      toast(t("host.announce.required"), "error");
      return undefined;
    }
    return this.call("announce", ["announce"], async () => {
      await api(`/streams/${this.stream.id}/announcements`, { method: "POST", body: { text } });
      toast(t("host.announce.sent"), "ok");
      this.announceDraft = { kk: "", ru: "", uz: "" };
      for (const code of TEXT_LANGUAGES) this.el.announceForm.querySelector(`#announce-${code}`).value = "";
    });
  }

  async deleteChat(m) {
    try {
      await api(`/streams/${this.stream.id}/chat/${m.seq}`, { method: "DELETE" });
      this.removeChat(m.seq); // the room's chat_deleted event follows; removing twice is harmless
    } catch (err) {
      toast(err.message || t("common.error"), "error");
    }
  }

  async moderate(user, action) {
    try {
      await api(`/streams/${this.stream.id}/moderation`, { method: "POST", body: { user_id: user.id, action } });
      this.restrict(user.id, action);
      toast(t(`host.chat.done.${action}`, { name: user.name }), "ok");
    } catch (err) {
      toast(err.message || t("common.error"), "error");
    }
  }
}

// --- Start -----------------------------------------------------------------------------------

boot(async () => {
  renderHeader = mountHeader(document.getElementById("header"), { active: "host", onAuth: () => show() });
  onPrefsChange(async () => {
    if (page) await page.onPrefs();
    else await show();
  });
  await show();
});
