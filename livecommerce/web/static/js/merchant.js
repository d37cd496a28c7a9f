// The merchant page ("/merchant"): the catalog with translations and stock per warehouse,
// CSV import with an upload progress bar and a per-row report, orders with their tracking,
// and parcels with the customs manifest of a warehouse and day.

import {
  ApiError,
  CURRENCIES,
  LOCALES,
  LOCALE_NAMES,
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

const main = document.getElementById("main");

const TABS = ["catalog", "import", "orders", "shipments"];
const ORDER_STATUSES = ["pending_payment", "paid", "fulfilling", "shipped", "delivered", "cancelled", "refunded"];
const SHIPMENT_STATUSES = ["created", "booked", "in_transit", "customs_hold", "out_for_delivery", "delivered", "cancelled"];
const FALLBACK_WAREHOUSES = [
  { code: "DEDUI", name: "Duisburg" },
  { code: "KZALA", name: "Almaty" },
];
const MODE_ICONS = { rail: "🚆", road: "🚚", air: "✈️", courier: "🛵", post: "📮" };
const STATUS_TONE = {
  pending_payment: "wait",
  paid: "wait",
  fulfilling: "wait",
  created: "wait",
  booked: "move",
  shipped: "move",
  in_transit: "move",
  out_for_delivery: "move",
  customs_hold: "hold",
  delivered: "ok",
  cancelled: "off",
  refunded: "off",
};
const REQUIRED_COLUMNS = ["sku", "title_<lang>", "price", "weight_grams", "hs_code", "origin_country"];
const OPTIONAL_COLUMNS = ["currency", "description_<lang>", "image_urls", "stock_DEDUI", "stock_KZALA"];
const SAMPLE_CSV = [
  ["sku", "title_ru", "title_kk", "title_uz", "price", "currency", "weight_grams", "hs_code", "origin_country", "stock_KZALA"],
  ["KHG-SAMPLE-001", "Шёлковый платок, 90 × 90 см", "Жібек орамал, 90 × 90 см", "Ipak roʻmol, 90 × 90 sm", "4990", "KZT", "120", "6214100000", "CN", "25"],
  ["KHG-SAMPLE-002", "Керамическая пиала", "Керамика кесе", "Keramik piyola", "1590", "KZT", "350", "691200", "UZ", "40"],
  ["KHG-SAMPLE-003", "Термос из нержавеющей стали, 1 л", "Тот баспайтын болат термос, 1 л", "Zanglamas poʻlat termos, 1 l", "399.00", "CNY", "800", "9617.00", "CN", "12"],
];

const state = {
  tab: TABS.includes(window.location.hash.slice(1)) ? window.location.hash.slice(1) : "catalog",
  warehouses: FALLBACK_WAREHOUSES,
  catalog: { q: "", page: 1 },
  orders: { status: "", warehouse: "", page: 1 },
  shipments: { status: "", warehouse: "", date: "", page: 1 },
  manifest: { warehouse: "DEDUI", date: localDate(new Date()) },
  upload: { file: null, encoding: "utf-8", busy: false, percent: 0, phase: "", error: "", report: null },
};

let renderHeader = () => {};
let panelSeq = 0; // bumps whenever a panel is (re)built: late answers for an old one are dropped

// --- small helpers ----------------------------------------------------------------------------

function localDate(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/** "23 November, 20:07" in the page's language (dates from CLDR through core.dayMonth). */
function dateTime(iso) {
  const when = new Date(iso);
  const time = `${String(when.getHours()).padStart(2, "0")}:${String(when.getMinutes()).padStart(2, "0")}`;
  const year = when.getFullYear() !== new Date().getFullYear() ? ` ${when.getFullYear()}` : "";
  return `${dayMonth(localDate(when))}${year}, ${time}`;
}

// Chromium's ICU lacks Kazakh and Uzbek number data and silently writes English "30,000.5";
// both languages group and separate decimals as Russian does in CLDR ("30 000,5").
const NUMBER_LOCALE = { kk: "ru", uz: "ru" };

function number(value, options = {}) {
  return new Intl.NumberFormat(NUMBER_LOCALE[prefs.locale] || prefs.locale, options).format(value);
}

function weightKg(grams) {
  return t("merchant.weight_kg", { kg: number(grams / 1000, { maximumFractionDigits: 2 }) });
}

function warehouseName(code) {
  const found = state.warehouses.find((w) => w.code === code);
  return found && found.name && found.name !== code ? `${found.name} (${code})` : code;
}

function statusBadge(kind, status, text) {
  const label = text || t(`merchant.${kind}_status.${status}`);
  return h("span", { class: `badge st-${STATUS_TONE[status] || "off"}`, dataset: { status } }, label);
}

/** A product photo, or a plain tile when there is none or it cannot be loaded. */
function productImage(url) {
  const tile = h("div", { class: "noimg", "aria-hidden": "true" }, "🛍");
  if (!url) return tile;
  const img = h("img", { src: url, alt: "", loading: "lazy", referrerpolicy: "no-referrer" });
  img.addEventListener("error", () => img.replaceWith(tile));
  return img;
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

function loading() {
  return h("p", { class: "muted loading" }, t("common.loading"));
}

/** A failed load: its message and a way to try again (a lost session shows the sign-in). */
function failure(err, retry) {
  if (err instanceof ApiError && err.status === 401) {
    renderHeader();
    render();
    return h("p", {}, "");
  }
  console.warn(err);
  return h(
    "div",
    { class: "notice error", role: "alert" },
    h("p", {}, err instanceof ApiError ? err.message : t("common.error")),
    h("button", { type: "button", onclick: retry }, t("common.retry")),
  );
}

function select(attrs, options, current) {
  return h(
    "select",
    attrs,
    options.map(([value, label]) => h("option", { value, selected: value === current }, label)),
  );
}

function warehouseOptions(withAll) {
  const options = state.warehouses.map((w) => [w.code, warehouseName(w.code)]);
  return withAll ? [["", t("merchant.filter.all")], ...options] : options;
}

function pager(data, go) {
  const pages = Math.max(1, data.pages || 1);
  if (pages <= 1) return null;
  return h(
    "nav",
    { class: "pager", "aria-label": t("merchant.page", { page: data.page, pages }) },
    h("button", { type: "button", class: "pager-prev", disabled: data.page <= 1, onclick: () => go(data.page - 1) }, `‹ ${t("merchant.prev")}`),
    h("span", { class: "muted small" }, t("merchant.page", { page: number(data.page), pages: number(pages) })),
    h("button", { type: "button", class: "pager-next", disabled: data.page >= pages, onclick: () => go(data.page + 1) }, `${t("merchant.next")} ›`),
  );
}

function saveBlob(blob, filename) {
  const href = URL.createObjectURL(blob);
  const link = h("a", { href, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10_000);
}

/** A modal sheet with a title bar; returns {dialog, body, close}. */
function sheet(id, title) {
  const body = h("div", { class: "sheet-body" }, loading());
  const heading = h("h2", { class: "grow" }, title);
  const dialog = h("dialog", { class: "sheet wide", id, "aria-label": title });
  const close = () => {
    dialog.close();
    dialog.remove();
  };
  dialog.addEventListener("close", () => dialog.remove());
  clear(
    dialog,
    h(
      "div",
      { class: "sheet-head" },
      heading,
      h("button", { type: "button", class: "icon", "aria-label": t("common.close"), onclick: close }, "✕"),
    ),
    body,
  );
  document.body.append(dialog);
  dialog.showModal();
  return { dialog, body, heading, close };
}

// --- the page ---------------------------------------------------------------------------------

function allowed(user) {
  return Boolean(user && (user.role === "merchant" || user.role === "admin"));
}

function render() {
  const user = session.user;
  document.title = `${t("merchant.title")} · ${t("app.name")}`;
  if (!session.token || !allowed(user)) {
    clear(
      main,
      h(
        "section",
        { class: "card gate", id: "merchant-gate" },
        h("div", { class: "gate-icon", "aria-hidden": "true" }, "🏪"),
        h("h1", {}, t("merchant.title")),
        h("p", {}, t("auth.need_role", { role: t("merchant.role") })),
        h("p", { class: "muted" }, t("merchant.signed_out")),
        h(
          "div",
          { class: "row" },
          h(
            "button",
            {
              class: "primary",
              id: "merchant-sign-in",
              onclick: () =>
                openSignIn(
                  async () => {
                    renderHeader();
                    render();
                  },
                  { role: "merchant" },
                ),
            },
            t("auth.sign_in"),
          ),
        ),
      ),
    );
    return;
  }
  const stats = h("div", { class: "stats", id: "merchant-stats" });
  const tabs = h(
    "div",
    { class: "tabs", role: "tablist", "aria-label": t("merchant.tabs") },
    TABS.map((tab) =>
      h(
        "button",
        {
          type: "button",
          role: "tab",
          id: `tab-${tab}`,
          "aria-selected": tab === state.tab ? "true" : "false",
          "aria-controls": "tab-panel",
          tabindex: tab === state.tab ? "0" : "-1",
          onclick: () => switchTab(tab),
          onkeydown: (event) => {
            const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
            if (!step) return;
            const next = TABS[(TABS.indexOf(tab) + step + TABS.length) % TABS.length];
            switchTab(next);
            document.getElementById(`tab-${next}`)?.focus();
          },
        },
        t(`merchant.tab.${tab}`),
      ),
    ),
  );
  const panel = h("section", { id: "tab-panel", role: "tabpanel", "aria-labelledby": `tab-${state.tab}` });
  const shop = (user.merchant && user.merchant.name) || user.display_name;
  clear(
    main,
    h(
      "div",
      { class: "merchant-head" },
      h("div", { class: "grow" }, h("h1", {}, t("merchant.title")), h("p", { class: "muted" }, shop)),
    ),
    stats,
    tabs,
    panel,
  );
  loadStats(stats);
  renderPanel();
}

function switchTab(tab) {
  if (tab === state.tab) return;
  state.tab = tab;
  window.history.replaceState(null, "", `#${tab}`);
  for (const name of TABS) {
    const button = document.getElementById(`tab-${name}`);
    if (!button) continue;
    button.setAttribute("aria-selected", name === tab ? "true" : "false");
    button.setAttribute("tabindex", name === tab ? "0" : "-1");
  }
  renderPanel();
}

function renderPanel() {
  const panel = document.getElementById("tab-panel");
  if (!panel) return;
  panelSeq += 1;
  panel.setAttribute("aria-labelledby", `tab-${state.tab}`);
  const build = { catalog: catalogPanel, import: importPanel, orders: ordersPanel, shipments: shipmentsPanel }[state.tab];
  build(panel, panelSeq);
}

async function loadWarehouses() {
  try {
    const list = await api("/warehouses", { auth: false });
    if (Array.isArray(list) && list.length) state.warehouses = list;
  } catch (err) {
    console.warn(err);
  }
}

async function loadStats(box) {
  const figure = (id, label, value, tone = "") =>
    h("div", { class: `card stat ${tone}`, id }, h("b", {}, value === null ? "–" : typeof value === "number" ? number(value) : value), h("span", { class: "muted small" }, label));
  const total = (promise) => promise.then((page) => (page.total_exact === false ? `${number(page.total)}+` : page.total)).catch(() => null);
  const [products, prepare, transit, held] = await Promise.all([
    total(api("/products", { query: { page_size: 1 } })),
    total(api("/orders", { query: { status: "fulfilling" } })),
    total(api("/shipments", { query: { status: "in_transit" } })),
    total(api("/shipments", { query: { status: "customs_hold" } })),
  ]);
  clear(
    box,
    figure("stat-products", t("merchant.stat.products"), products),
    figure("stat-to-prepare", t("merchant.stat.to_prepare"), prepare),
    figure("stat-in-transit", t("merchant.stat.in_transit"), transit),
    figure("stat-customs-hold", t("merchant.stat.customs_hold"), held, held ? "warn" : ""),
  );
}

// --- catalog ----------------------------------------------------------------------------------

function catalogPanel(panel, seq) {
  const list = h("div", { class: "card products-card" }, loading());
  const search = h("input", {
    type: "search",
    id: "product-search",
    value: state.catalog.q,
    placeholder: t("merchant.catalog.search"),
    "aria-label": t("merchant.catalog.search"),
    maxlength: 200,
    autocomplete: "off",
    oninput: debounce((event) => {
      state.catalog.q = event.target.value.trim();
      state.catalog.page = 1;
      loadProducts(list, seq);
    }, 300),
  });
  const count = h("span", { class: "muted small", id: "product-count" });
  clear(panel, h("div", { class: "toolbar" }, h("div", { class: "search grow" }, search), count), list);
  loadProducts(list, seq);
}

let productsSeq = 0;

async function loadProducts(list, seq) {
  const mine = (productsSeq += 1);
  const { q, page } = state.catalog;
  let data;
  try {
    data = await api("/products", { query: { q, page, page_size: 20 } });
  } catch (err) {
    if (seq === panelSeq && mine === productsSeq) clear(list, failure(err, () => loadProducts(list, seq)));
    return;
  }
  if (seq !== panelSeq || mine !== productsSeq) return;
  const count = document.getElementById("product-count");
  if (count) {
    count.textContent = data.total_exact
      ? t("merchant.catalog.count", { count: number(data.total) })
      : t("merchant.catalog.count_more", { count: number(data.total) });
  }
  if (!data.items.length) {
    clear(
      list,
      h(
        "div",
        { class: "empty", id: "products-empty" },
        h("p", {}, q ? t("merchant.catalog.no_match", { q }) : t("merchant.catalog.empty")),
        q ? null : h("button", { type: "button", onclick: () => switchTab("import") }, t("merchant.tab.import")),
      ),
    );
    return;
  }
  const head = h(
    "div",
    { class: "product-row head", "aria-hidden": "true" },
    h("span", {}),
    h("span", {}, t("merchant.col.product")),
    h("span", { class: "price-cell" }, t("merchant.col.price")),
    h("span", { class: "stocks" }, t("merchant.col.stock")),
    h("span", {}),
  );
  const go = (to) => {
    state.catalog.page = to;
    loadProducts(list, seq);
    list.scrollIntoView({ block: "start", behavior: "smooth" });
  };
  clear(list, head, h("div", { id: "products", role: "list" }, data.items.map(productRow)), pager(data, go));
}

function productRow(product) {
  const levels = Object.fromEntries((product.stock || []).map((s) => [s.warehouse, s.quantity]));
  const open = () => openEditor(product.id, () => loadProducts(document.querySelector(".products-card"), panelSeq));
  const base = product.base_price && product.base_price.currency !== product.price.currency ? product.base_price : null;
  return h(
    "div",
    { class: "product-row", role: "listitem", dataset: { productId: product.id, sku: product.sku }, onclick: open },
    h("div", { class: "thumb" }, productImage(product.image_urls && product.image_urls[0])),
    h(
      "div",
      { class: "main-cell" },
      h("div", { class: "title" }, product.title),
      h("div", { class: "muted small sku" }, product.sku, product.available ? null : " · ⏸"),
    ),
    h(
      "div",
      { class: "price-cell" },
      h("span", { class: "amount" }, product.price.formatted),
      base ? h("span", { class: "muted small" }, t("merchant.catalog.base_price", { price: base.formatted })) : null,
    ),
    h(
      "div",
      { class: "stocks" },
      state.warehouses.map((w) => {
        const qty = levels[w.code] ?? 0;
        return h(
          "span",
          { class: `stock-chip${qty === 0 ? " zero" : ""}`, title: warehouseName(w.code), dataset: { warehouse: w.code } },
          h("span", { class: "code" }, w.code),
          h("b", {}, number(qty)),
        );
      }),
    ),
    h(
      "button",
      {
        type: "button",
        class: "edit",
        onclick: (event) => {
          event.stopPropagation();
          open();
        },
      },
      t("merchant.catalog.edit"),
    ),
  );
}

// --- product editor ---------------------------------------------------------------------------

async function openEditor(productId, saved) {
  const { dialog, body, heading, close } = sheet("product-editor", t("merchant.editor.title"));
  let wrote = false; // something reached the server: the list refreshes when the sheet closes
  dialog.addEventListener("close", () => wrote && saved && saved());
  let product;
  try {
    product = await api(`/products/${productId}`);
  } catch (err) {
    clear(body, failure(err, () => (close(), openEditor(productId, saved))));
    return;
  }
  heading.textContent = product.title;
  let translations = product.translations || { title: {}, description: {} };
  const levels = Object.fromEntries((product.stock || []).map((s) => [s.warehouse, s.quantity]));
  let base = product.base_price || product.price;
  const inputs = {};
  const slots = {};

  const errorSlot = (name) => (slots[name] = h("span", { class: "field-error", dataset: { errorFor: name }, hidden: true }));
  const field = (name, label, control, extra = {}) => {
    inputs[name] = control;
    return h("label", { class: extra.class || null }, label, control, errorSlot(name));
  };

  const languages = LOCALES.map((code) =>
    h(
      "fieldset",
      { class: "lang", dataset: { lang: code } },
      h("legend", {}, LOCALE_NAMES[code], h("span", { class: "badge" }, code)),
      field(
        `title.${code}`,
        t("merchant.editor.title_field"),
        h("input", { id: `edit-title-${code}`, lang: code, maxlength: 200, value: translations.title[code] || "" }),
      ),
      field(
        `description.${code}`,
        t("merchant.editor.description_field"),
        h("textarea", { id: `edit-description-${code}`, lang: code, rows: 3, maxlength: 5000 }, translations.description[code] || ""),
      ),
    ),
  );
  const currencies = CURRENCIES.includes(base.currency) ? CURRENCIES : [base.currency, ...CURRENCIES];
  const details = h(
    "div",
    { class: "details-grid" },
    h(
      "div",
      { class: "price-field" },
      field("price", t("merchant.editor.price"), h("input", { id: "edit-price", inputmode: "decimal", value: base.amount })),
      field("price.currency", t("pick.currency"), select({ id: "edit-currency" }, currencies.map((c) => [c, c]), base.currency)),
    ),
    field("weight_grams", t("merchant.editor.weight"), h("input", { id: "edit-weight", type: "number", min: 1, step: 1, value: product.weight_grams })),
    field("hs_code", t("merchant.editor.hs_code"), h("input", { id: "edit-hs-code", value: product.hs_code, maxlength: 20 })),
    field(
      "origin_country",
      t("merchant.editor.origin"),
      h("input", { id: "edit-origin", value: product.origin_country, maxlength: 2, class: "upper", autocomplete: "off", placeholder: "CN" }),
    ),
  );
  const stock = h(
    "div",
    { class: "details-grid" },
    state.warehouses.map((w) =>
      field(
        `stock.${w.code}`,
        warehouseName(w.code),
        h("input", { id: `edit-stock-${w.code}`, type: "number", min: 0, step: 1, value: levels[w.code] ?? 0 }),
      ),
    ),
  );
  const general = h("p", { class: "error", role: "alert", id: "editor-error", hidden: true });
  const saveButton = h("button", { type: "submit", class: "primary", id: "product-save" }, t("common.save"));

  const showErrors = (errors) => {
    for (const [name, slot] of Object.entries(slots)) {
      slot.hidden = true;
      slot.textContent = "";
      inputs[name]?.removeAttribute("aria-invalid");
    }
    general.hidden = true;
    const loose = [];
    for (const { field: name, message } of errors) {
      // "price.amount" -> "price", "title" -> the group of title fields.
      let key = name;
      while (key && !slots[key] && key.includes(".")) key = key.slice(0, key.lastIndexOf("."));
      const group = Object.keys(slots).filter((k) => k.startsWith(`${name}.`));
      if (slots[key]) {
        slots[key].textContent = message;
        slots[key].hidden = false;
        inputs[key]?.setAttribute("aria-invalid", "true");
      } else if (group.length) {
        for (const k of group) inputs[k]?.setAttribute("aria-invalid", "true");
        loose.push(message);
      } else {
        loose.push(message);
      }
    }
    if (loose.length) {
      general.textContent = loose.join(" ");
      general.hidden = false;
    }
    body.querySelector('[aria-invalid="true"]')?.scrollIntoView({ block: "center", behavior: "smooth" });
  };
  const apiErrors = (err, prefix = "") => {
    if (!(err instanceof ApiError)) return [{ field: "", message: t("common.error") }];
    const fields = err.details && Array.isArray(err.details.fields) ? err.details.fields : null;
    if (fields && fields.length) return fields.map((f) => ({ field: prefix + f.field, message: f.message }));
    const single = err.details && typeof err.details.field === "string" ? err.details.field : "";
    return [{ field: single ? prefix + single : prefix.replace(/\.$/, ""), message: err.message }];
  };

  const save = async () => {
    const patch = {};
    for (const kind of ["title", "description"]) {
      for (const code of LOCALES) {
        const now = inputs[`${kind}.${code}`].value.trim();
        if (now !== (translations[kind][code] || "")) {
          patch[kind] = patch[kind] || {};
          patch[kind][code] = now || null;
        }
      }
    }
    const amount = inputs.price.value.trim().replace(",", ".");
    const currency = inputs["price.currency"].value;
    if (amount !== base.amount || currency !== base.currency) patch.price = { amount, currency };
    const weight = inputs.weight_grams.value.trim();
    if (weight !== String(product.weight_grams)) patch.weight_grams = /^\d+$/.test(weight) ? Number(weight) : weight;
    const hs = inputs.hs_code.value.trim();
    if (hs !== product.hs_code) patch.hs_code = hs;
    const origin = inputs.origin_country.value.trim().toUpperCase();
    if (origin !== product.origin_country) patch.origin_country = origin;
    const stockChanges = state.warehouses
      .map((w) => [w.code, inputs[`stock.${w.code}`].value.trim()])
      .filter(([code, value]) => value !== String(levels[code] ?? 0));

    if (!Object.keys(patch).length && !stockChanges.length) {
      toast(t("merchant.editor.unchanged"));
      close();
      return;
    }
    saveButton.disabled = true;
    const errors = [];
    try {
      if (Object.keys(patch).length) {
        try {
          const updated = await api(`/products/${productId}`, { method: "PATCH", body: patch });
          // Saved: what is on the server now is the new baseline for a second try.
          product = updated;
          wrote = true;
          if (updated.translations) translations = updated.translations;
          base = updated.base_price || updated.price;
        } catch (err) {
          errors.push(...apiErrors(err));
        }
      }
      // Stock is independent of the product fields: set it even when they were refused.
      for (const [code, value] of stockChanges) {
        try {
          const quantity = /^\d+$/.test(value) ? Number(value) : value;
          await api(`/products/${productId}/stock/${code}`, { method: "PUT", body: { quantity } });
          levels[code] = quantity;
          wrote = true;
        } catch (err) {
          // The body's only field is "quantity": show it at this warehouse's input.
          errors.push(...apiErrors(err).map((e) => ({ ...e, field: `stock.${code}` })));
        }
      }
    } finally {
      saveButton.disabled = false;
    }
    if (errors.length) {
      showErrors(errors);
      return;
    }
    toast(t("merchant.editor.saved"), "ok");
    close();
  };

  clear(
    body,
    h(
      "form",
      {
        id: "product-form",
        novalidate: true,
        onsubmit: (event) => {
          event.preventDefault();
          save();
        },
      },
      h("p", { class: "muted small" }, `${t("merchant.col.sku")}: `, h("b", { id: "editor-sku" }, product.sku)),
      h("h3", {}, t("merchant.editor.translations")),
      h("p", { class: "muted small" }, t("merchant.editor.translations_hint")),
      errorSlot("title"),
      errorSlot("description"),
      h("div", { class: "lang-grid" }, languages),
      h("h3", {}, t("merchant.editor.details")),
      details,
      h("h3", {}, t("merchant.editor.stock")),
      stock,
      general,
      h(
        "div",
        { class: "sheet-foot row" },
        saveButton,
        h("button", { type: "button", class: "link", onclick: close }, t("common.cancel")),
      ),
    ),
  );
}

// --- CSV import -------------------------------------------------------------------------------

function csvCell(value) {
  return /[",;\n\r]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

function downloadSample() {
  const text = SAMPLE_CSV.map((row) => row.map(csvCell).join(",")).join("\r\n") + "\r\n";
  saveBlob(new Blob(["\ufeff", text], { type: "text/csv;charset=utf-8" }), "products-sample.csv");
}

function importPanel(panel) {
  const up = state.upload;
  const fileName = h("span", { class: "file-name muted small", id: "import-file-name" });
  const submit = h("button", { type: "submit", class: "primary", id: "import-submit", disabled: !up.file || up.busy }, t("merchant.import.submit"));
  const describe = () => {
    fileName.textContent = up.file
      ? `${up.file.name} · ${number(up.file.size / 1024, { maximumFractionDigits: 1 })} KB`
      : "";
    submit.disabled = !up.file || up.busy;
  };
  const input = h("input", {
    type: "file",
    id: "import-file",
    name: "file",
    accept: ".csv,.tsv,.txt,text/csv,text/plain",
    onchange: (event) => {
      up.file = event.target.files[0] || null;
      describe();
    },
  });
  describe();
  const encoding = select(
    {
      id: "import-encoding",
      onchange: (event) => (up.encoding = event.target.value),
    },
    [
      ["utf-8", t("merchant.import.encoding_utf8")],
      ["cp1251", t("merchant.import.encoding_cp1251")],
      ["utf-16", t("merchant.import.encoding_utf16")],
    ],
    up.encoding,
  );
  const progress = h("div", { class: "upload-progress", id: "import-progress-box" });
  const report = h("div", { id: "import-report" });

  const form = h(
    "form",
    {
      class: "card import-form",
      id: "import-form",
      onsubmit: (event) => {
        event.preventDefault();
        if (up.file && !up.busy) upload(submit, progress, report);
      },
    },
    h("h2", {}, t("merchant.import.title")),
    h("p", { class: "muted" }, t("merchant.import.intro")),
    h(
      "p",
      { class: "small columns" },
      t("merchant.import.columns", { columns: REQUIRED_COLUMNS.join(", ") }),
      " ",
      h("span", { class: "muted" }, t("merchant.import.optional", { columns: OPTIONAL_COLUMNS.join(", ") })),
    ),
    h(
      "div",
      { class: "import-fields" },
      h("label", { class: "dropzone grow" }, t("merchant.import.file"), input, fileName),
      h("label", {}, t("merchant.import.encoding"), encoding),
    ),
    progress,
    h(
      "div",
      { class: "row" },
      submit,
      h("button", { type: "button", class: "link", id: "import-sample", onclick: downloadSample }, `⬇ ${t("merchant.import.sample")}`),
    ),
  );
  clear(panel, form, report);
  renderProgress(progress);
  renderReport(report);
}

function renderProgress(box) {
  const up = state.upload;
  if (!up.busy && !up.error && !up.phase) {
    clear(box);
    return;
  }
  const percent = Math.round(up.percent);
  const bar = h(
    "div",
    {
      class: `progress${up.phase === "processing" ? " busy" : ""}`,
      id: "import-progress",
      role: "progressbar",
      "aria-valuemin": "0",
      "aria-valuemax": "100",
      "aria-valuenow": String(percent),
      "aria-label": t("merchant.import.file"),
    },
    h("span", { style: { width: `${percent}%` } }),
  );
  const text =
    up.error ||
    (up.phase === "uploading"
      ? t("merchant.import.uploading", { percent: number(percent / 100, { style: "percent" }) })
      : up.phase === "processing"
        ? t("merchant.import.processing")
        : "");
  clear(box, bar, text ? h("p", { class: `small ${up.error ? "error" : "muted"}`, id: "import-status", role: up.error ? "alert" : "status" }, text) : null);
}

function upload(submit, progress, report) {
  const up = state.upload;
  const seq = panelSeq;
  const current = () => (seq === panelSeq ? [document.getElementById("import-progress-box"), document.getElementById("import-report")] : [null, null]);
  Object.assign(up, { busy: true, percent: 0, phase: "uploading", error: "", report: null });
  submit.disabled = true;
  renderProgress(progress);
  renderReport(report);

  const url = new URL("/api/v1/products/import", window.location.origin);
  url.searchParams.set("locale", prefs.locale);
  if (up.encoding && up.encoding !== "utf-8") url.searchParams.set("encoding", up.encoding);
  const form = new FormData();
  form.append("file", up.file, up.file.name);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", url);
  xhr.setRequestHeader("Accept", "application/json");
  if (session.token) xhr.setRequestHeader("Authorization", `Bearer ${session.token}`);
  const refresh = () => {
    const [box] = current();
    if (box) renderProgress(box);
  };
  xhr.upload.onprogress = (event) => {
    if (event.lengthComputable) up.percent = (100 * event.loaded) / event.total;
    refresh();
  };
  xhr.upload.onload = () => {
    Object.assign(up, { percent: 100, phase: "processing" });
    refresh();
  };
  const finish = (error, data) => {
    Object.assign(up, { busy: false, phase: error ? "" : "done", error: error ? t("merchant.import.failed", { reason: error }) : "" });
    if (!error) up.report = data;
    const [box, reportBox] = current();
    if (box) renderProgress(box);
    if (reportBox) renderReport(reportBox);
    const button = document.getElementById("import-submit");
    if (button) button.disabled = !up.file;
    if (!error) {
      document.getElementById("import-summary")?.scrollIntoView({ block: "start", behavior: "smooth" });
      loadStats(document.getElementById("merchant-stats"));
    }
  };
  xhr.onload = () => {
    let data = null;
    try {
      data = JSON.parse(xhr.responseText);
    } catch {
      data = null;
    }
    if (xhr.status >= 200 && xhr.status < 300 && data) {
      finish("", data);
      return;
    }
    const err = new ApiError(xhr.status, data);
    if (xhr.status === 401) session.clear();
    finish(err.message, null);
    if (xhr.status === 401) {
      renderHeader();
      render();
    }
  };
  xhr.onerror = () => finish(t("common.error"), null);
  xhr.send(form);
}

function renderReport(box) {
  const report = state.upload.report;
  if (!report) {
    clear(box);
    return;
  }
  const stat = (id, label, value, tone = "") =>
    h("div", { class: `stat ${tone}`, id }, h("b", {}, number(value)), h("span", { class: "muted small" }, label));
  const errors = report.errors || [];
  clear(
    box,
    h(
      "section",
      { class: "card", id: "import-summary", dataset: { importId: report.import_id } },
      h("h2", {}, t("merchant.import.report")),
      h(
        "div",
        { class: "stats" },
        stat("import-rows", t("merchant.import.rows_total"), report.rows_total),
        stat("import-created", t("merchant.import.created"), report.created, report.created ? "good" : ""),
        stat("import-updated", t("merchant.import.updated"), report.updated),
        stat("import-failed", t("merchant.import.failed_rows"), report.failed, report.failed ? "bad" : ""),
      ),
      h("p", { class: "muted small" }, report.summary),
      report.ignored_columns && report.ignored_columns.length
        ? h("p", { class: "small warn-text" }, t("merchant.import.ignored", { columns: report.ignored_columns.join(", ") }))
        : null,
    ),
    h(
      "section",
      { class: "card" },
      h("h2", {}, t("merchant.import.errors")),
      errors.length
        ? h(
            "div",
            { class: "table-wrap" },
            h(
              "table",
              { id: "import-errors" },
              h(
                "thead",
                {},
                h(
                  "tr",
                  {},
                  h("th", { class: "num" }, t("merchant.import.col.row")),
                  h("th", {}, t("merchant.col.sku")),
                  h("th", {}, t("merchant.import.col.column")),
                  h("th", {}, t("merchant.import.col.message")),
                ),
              ),
              h(
                "tbody",
                {},
                errors.map((e) =>
                  h(
                    "tr",
                    { dataset: { row: e.row, code: e.code } },
                    h("td", { class: "num" }, number(e.row)),
                    h("td", { class: "mono" }, e.sku || "—"),
                    h("td", {}, e.field ? h("code", {}, e.field) : "—"),
                    h("td", {}, e.message),
                  ),
                ),
              ),
            ),
          )
        : h("p", { class: "ok", id: "import-no-errors" }, `✓ ${t("merchant.import.no_errors")}`),
      report.errors_truncated ? h("p", { class: "muted small" }, t("merchant.import.truncated")) : null,
    ),
  );
}

// --- orders -----------------------------------------------------------------------------------

function ordersPanel(panel, seq) {
  const list = h("div", { class: "card" }, loading());
  const filters = h(
    "div",
    { class: "toolbar filters" },
    h(
      "label",
      {},
      t("merchant.filter.status"),
      select(
        {
          id: "orders-status",
          onchange: (event) => {
            Object.assign(state.orders, { status: event.target.value, page: 1 });
            loadOrders(list, seq);
          },
        },
        [["", t("merchant.filter.all")], ...ORDER_STATUSES.map((s) => [s, t(`merchant.order_status.${s}`)])],
        state.orders.status,
      ),
    ),
    h(
      "label",
      {},
      t("merchant.filter.warehouse"),
      select(
        {
          id: "orders-warehouse",
          onchange: (event) => {
            Object.assign(state.orders, { warehouse: event.target.value, page: 1 });
            loadOrders(list, seq);
          },
        },
        warehouseOptions(true),
        state.orders.warehouse,
      ),
    ),
  );
  clear(panel, filters, list);
  loadOrders(list, seq);
}

let ordersSeq = 0;

async function loadOrders(list, seq) {
  const mine = (ordersSeq += 1);
  const { status, warehouse, page } = state.orders;
  let data;
  try {
    data = await api("/orders", { query: { status, warehouse, page } });
  } catch (err) {
    if (seq === panelSeq && mine === ordersSeq) clear(list, failure(err, () => loadOrders(list, seq)));
    return;
  }
  if (seq !== panelSeq || mine !== ordersSeq) return;
  if (!data.items.length) {
    clear(list, h("p", { class: "empty muted", id: "orders-empty" }, t("merchant.orders.empty")));
    return;
  }
  const go = (to) => {
    state.orders.page = to;
    loadOrders(list, seq);
  };
  clear(
    list,
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { id: "orders-table", class: "clickable" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            [
              ["order", ""],
              ["status", ""],
              ["total", "num"],
              ["date", ""],
              ["city", ""],
              ["items", ""],
              ["payment", ""],
            ].map(([key, cls]) => h("th", { class: cls || null }, t(`merchant.col.${key}`))),
          ),
        ),
        h("tbody", {}, data.items.map(orderRow)),
      ),
    ),
    pager(data, go),
  );
}

function itemsSummary(items) {
  if (!items || !items.length) return "—";
  const first = `${items[0].title} × ${items[0].quantity}`;
  return items.length > 1 ? `${first} ${t("ticker.more", { count: items.length - 1 })}` : first;
}

function clickableRow(attrs, label, open, ...cells) {
  return h(
    "tr",
    {
      ...attrs,
      tabindex: "0",
      "aria-label": label,
      onclick: open,
      onkeydown: (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          open();
        }
      },
    },
    ...cells,
  );
}

function countryName(code) {
  const key = `country.${code}`;
  const text = t(key);
  return text === key ? code : text;
}

function orderRow(order) {
  const city = order.destination ? `${order.destination.city}, ${order.destination.country}` : order.ship_to?.city || "—";
  return clickableRow(
    { dataset: { orderId: order.id, status: order.status } },
    t("merchant.orders.open", { order: `#${order.id}` }),
    () => openTracking(order.id),
    h("td", { class: "nowrap" }, h("b", {}, `#${order.id}`)),
    h("td", {}, statusBadge("order", order.status, order.status_text)),
    h("td", { class: "num nowrap" }, order.total.formatted),
    h("td", { class: "nowrap" }, dateTime(order.created_at)),
    h("td", {}, city),
    h("td", { class: "items" }, itemsSummary(order.items)),
    h("td", { class: "nowrap" }, t(order.payment_method === "card" ? "checkout.pay_card" : "checkout.pay_cod")),
  );
}

async function openTracking(orderId) {
  const { body, heading, close } = sheet("order-tracking", t("merchant.tracking.title", { order: `#${orderId}` }));
  let order;
  let tracking;
  try {
    [order, tracking] = await Promise.all([api(`/orders/${orderId}`), api(`/orders/${orderId}/tracking`)]);
  } catch (err) {
    clear(body, failure(err, () => (close(), openTracking(orderId))));
    return;
  }
  clear(heading, t("merchant.tracking.title", { order: `#${orderId}` }), " ", statusBadge("order", tracking.status, tracking.status_text));
  const ship = order.ship_to || {};
  const summary = h(
    "div",
    { class: "order-summary" },
    h(
      "div",
      {},
      h("span", { class: "muted small" }, t("merchant.tracking.ship_to")),
      h(
        "p",
        {},
        [ship.recipient_name, [order.destination?.city || ship.city, countryName(ship.country)].filter(Boolean).join(", ")]
          .filter(Boolean)
          .join(" · "),
      ),
    ),
    h("div", {}, h("span", { class: "muted small" }, t("merchant.col.items")), h("p", {}, itemsSummary(order.items))),
    h(
      "div",
      {},
      h("span", { class: "muted small" }, t("merchant.col.total")),
      h("p", {}, h("b", {}, order.total.formatted), " · ", t(order.payment_method === "card" ? "checkout.pay_card" : "checkout.pay_cod")),
    ),
  );
  clear(
    body,
    summary,
    tracking.shipments.length
      ? h("div", { class: "parcels", id: "tracking-shipments" }, tracking.shipments.map(parcelCard))
      : h("p", { class: "muted empty", id: "tracking-none" }, t("merchant.tracking.none")),
  );
}

function legText(leg) {
  const mode = t(`merchant.mode.${leg.mode}`);
  const modeText = mode === `merchant.mode.${leg.mode}` ? leg.mode : mode;
  return `${MODE_ICONS[leg.mode] || "•"} ${leg.from} → ${leg.to} · ${modeText} · ${t("merchant.leg.days", { days: leg.days })}`;
}

function declarationBlock(declaration) {
  if (!declaration) return h("p", { class: "muted small customs-none" }, t("merchant.customs.none"));
  const item = (label, value, id) => h("div", { class: "kv" }, h("dt", {}, label), h("dd", { class: id || null }, value));
  return h(
    "div",
    { class: "customs" },
    h("h4", {}, t("merchant.customs.title")),
    h(
      "dl",
      { class: "kv-grid" },
      item(t("merchant.customs.rule"), declaration.rule, "customs-rule"),
      item(t("merchant.customs.declared"), declaration.declared_value.formatted, "customs-declared"),
      item(t("merchant.customs.duty"), declaration.duty.formatted, "customs-duty"),
      item(t("merchant.customs.allowance"), declaration.duty_free_allowance.formatted),
      declaration.export_mode
        ? item(t("merchant.customs.export_mode"), `${declaration.export_mode} · ${declaration.export_mode_name || ""}`, "customs-export-mode")
        : null,
      declaration.recipient?.tax_id ? item(t("merchant.customs.tax_id"), declaration.recipient.tax_id, "customs-tax-id") : null,
    ),
  );
}

function parcelCard(shipment) {
  const events = [...(shipment.events || [])].reverse(); // newest first
  const kv = (label, value) => h("div", { class: "kv" }, h("dt", {}, label), h("dd", {}, value));
  return h(
    "article",
    { class: "parcel", dataset: { shipmentId: shipment.id, status: shipment.status } },
    h(
      "div",
      { class: "row" },
      h("h3", { class: "grow" }, t("merchant.tracking.parcel", { warehouse: warehouseName(shipment.warehouse) })),
      statusBadge("shipment", shipment.status, shipment.status_text),
    ),
    h(
      "dl",
      { class: "kv-grid" },
      kv(t("merchant.col.tracking"), shipment.tracking_number ? h("code", { class: "tracking-number" }, shipment.tracking_number) : "—"),
      kv(t("merchant.tracking.carrier"), shipment.carrier || "—"),
      kv(t("merchant.col.eta"), shipment.eta ? dayMonth(shipment.eta) : "—"),
      kv(t("merchant.col.weight"), shipment.weight_grams ? weightKg(shipment.weight_grams) : "—"),
    ),
    h("h4", {}, t("merchant.tracking.route")),
    h("ol", { class: "route" }, shipment.legs.map((leg) => h("li", {}, legText(leg)))),
    declarationBlock(shipment.declaration),
    h("h4", {}, t("merchant.tracking.events")),
    events.length
      ? h(
          "ol",
          { class: "timeline" },
          events.map((e, i) =>
            h(
              "li",
              { class: i === 0 ? "latest" : null, dataset: { code: e.code } },
              h("time", { datetime: e.at, class: "muted small" }, dateTime(e.at)),
              h("span", {}, e.text),
            ),
          ),
        )
      : h("p", { class: "muted small" }, t("merchant.tracking.no_events")),
  );
}

// --- shipments and the manifest -------------------------------------------------------------

function shipmentsPanel(panel, seq) {
  const s = state.shipments;
  const list = h("div", { class: "card" }, loading());
  const reload = () => {
    s.page = 1;
    loadShipments(list, seq);
  };
  const date = h("input", {
    type: "date",
    id: "shipments-date",
    value: s.date,
    disabled: !s.warehouse,
    title: s.warehouse ? null : t("merchant.filter.date_hint"),
    onchange: (event) => {
      s.date = event.target.value;
      reload();
    },
  });
  const hint = h("span", { class: "muted small date-hint", hidden: Boolean(s.warehouse) }, t("merchant.filter.date_hint"));
  const filters = h(
    "div",
    { class: "toolbar filters" },
    h(
      "label",
      {},
      t("merchant.filter.status"),
      select(
        {
          id: "shipments-status",
          onchange: (event) => {
            s.status = event.target.value;
            reload();
          },
        },
        [["", t("merchant.filter.all")], ...SHIPMENT_STATUSES.map((x) => [x, t(`merchant.shipment_status.${x}`)])],
        s.status,
      ),
    ),
    h(
      "label",
      {},
      t("merchant.filter.warehouse"),
      select(
        {
          id: "shipments-warehouse",
          onchange: (event) => {
            s.warehouse = event.target.value;
            if (!s.warehouse) s.date = "";
            date.disabled = !s.warehouse;
            date.value = s.date;
            date.title = s.warehouse ? "" : t("merchant.filter.date_hint");
            hint.hidden = Boolean(s.warehouse);
            reload();
          },
        },
        warehouseOptions(true),
        s.warehouse,
      ),
    ),
    h("label", {}, t("merchant.filter.date"), date),
    hint,
  );
  clear(panel, manifestCard(), filters, list);
  loadShipments(list, seq);
}

let shipmentsSeq = 0;

async function loadShipments(list, seq) {
  const mine = (shipmentsSeq += 1);
  const { status, warehouse, date, page } = state.shipments;
  let data;
  try {
    data = await api("/shipments", { query: { status, warehouse, date: warehouse ? date : "", page } });
  } catch (err) {
    if (seq === panelSeq && mine === shipmentsSeq) clear(list, failure(err, () => loadShipments(list, seq)));
    return;
  }
  if (seq !== panelSeq || mine !== shipmentsSeq) return;
  if (!data.items.length) {
    clear(list, h("p", { class: "empty muted", id: "shipments-empty" }, t("merchant.shipments.empty")));
    return;
  }
  const go = (to) => {
    state.shipments.page = to;
    loadShipments(list, seq);
  };
  clear(
    list,
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { id: "shipments-table", class: "clickable" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["parcel", "order", "status", "warehouse", "tracking", "eta", "customs"].map((key) => h("th", {}, t(`merchant.col.${key}`))),
          ),
        ),
        h("tbody", {}, data.items.map(shipmentRow)),
      ),
    ),
    pager(data, go),
  );
}

function shipmentRow(shipment) {
  const d = shipment.declaration;
  return clickableRow(
    { dataset: { shipmentId: shipment.id, orderId: shipment.order_id, status: shipment.status } },
    t("merchant.orders.open", { order: `#${shipment.order_id}` }),
    () => openTracking(shipment.order_id),
    h("td", { class: "nowrap" }, h("b", {}, `#${shipment.id}`)),
    h("td", { class: "nowrap" }, `#${shipment.order_id}`),
    h("td", {}, statusBadge("shipment", shipment.status, shipment.status_text)),
    h("td", { class: "nowrap", title: warehouseName(shipment.warehouse) }, shipment.warehouse),
    h("td", {}, shipment.tracking_number ? h("code", {}, shipment.tracking_number) : "—"),
    h("td", { class: "nowrap" }, shipment.eta ? dayMonth(shipment.eta) : "—"),
    h(
      "td",
      { class: "nowrap" },
      d
        ? [h("span", { class: "badge" }, d.rule), " ", d.declared_value.formatted, h("span", { class: "muted small" }, ` · ${t("merchant.customs.duty")} ${d.duty.formatted}`)]
        : h("span", { class: "muted" }, "—"),
    ),
  );
}

function manifestCard() {
  const m = state.manifest;
  if (!state.warehouses.some((w) => w.code === m.warehouse)) m.warehouse = state.warehouses[0].code;
  const button = h("button", { type: "submit", class: "primary", id: "manifest-download" }, `⬇ ${t("merchant.manifest.download")}`);
  return h(
    "form",
    {
      class: "card manifest",
      id: "manifest-form",
      onsubmit: async (event) => {
        event.preventDefault();
        if (!m.warehouse || !m.date) return;
        button.disabled = true;
        try {
          await downloadManifest(m.warehouse, m.date);
        } finally {
          button.disabled = false;
        }
      },
    },
    h("div", {}, h("h2", {}, `📄 ${t("merchant.manifest.title")}`), h("p", { class: "muted small" }, t("merchant.manifest.intro"))),
    h(
      "label",
      {},
      t("merchant.filter.warehouse"),
      select({ id: "manifest-warehouse", required: true, onchange: (e) => (m.warehouse = e.target.value) }, warehouseOptions(false), m.warehouse),
    ),
    h(
      "label",
      {},
      t("merchant.filter.date"),
      h("input", { type: "date", id: "manifest-date", required: true, value: m.date, onchange: (e) => (m.date = e.target.value) }),
    ),
    button,
  );
}

async function downloadManifest(warehouse, date) {
  const url = new URL("/api/v1/shipments/manifest.csv", window.location.origin);
  url.searchParams.set("warehouse", warehouse);
  url.searchParams.set("date", date);
  url.searchParams.set("locale", prefs.locale);
  try {
    const response = await fetch(url, {
      headers: { Accept: "text/csv, application/json", Authorization: `Bearer ${session.token}` },
    });
    if (!response.ok) {
      const body = await response.json().catch(() => null);
      if (response.status === 401) session.clear();
      throw new ApiError(response.status, body);
    }
    const blob = await response.blob();
    const disposition = response.headers.get("Content-Disposition") || "";
    const named = disposition.match(/filename="?([^";]+)"?/);
    saveBlob(blob, named ? named[1] : `manifest-${warehouse}-${date}.csv`);
    // Only the header row: say so, so an empty file is not a surprise.
    const lines = (await blob.text()).split(/\r?\n/).filter((line) => line.trim()).length;
    if (lines <= 1) toast(t("merchant.manifest.empty"));
  } catch (err) {
    toast(err instanceof ApiError ? err.message : t("common.error"), "error");
    if (err instanceof ApiError && err.status === 401) {
      renderHeader();
      render();
    }
  }
}

// --- start ------------------------------------------------------------------------------------

boot(async () => {
  renderHeader = mountHeader(document.getElementById("header"), {
    active: "merchant",
    signInRole: "merchant",
    onAuth: () => {
      render();
    },
  });
  await loadWarehouses();
  render();
  onPrefsChange(async () => {
    // Close sheets showing texts of the old language; they are reopened from the page.
    for (const dialog of document.querySelectorAll("dialog.sheet.wide")) dialog.close();
    await loadWarehouses();
    render();
  });
  window.addEventListener("hashchange", () => {
    const tab = window.location.hash.slice(1);
    if (TABS.includes(tab)) switchTab(tab);
  });
});
