// Shared by every page: texts, language and currency, the API client, the session, and a
// tiny DOM helper. Plain ES module, no build step.

export const LOCALES = ["kk", "ru", "uz", "en", "zh"];
export const LOCALE_NAMES = { kk: "Қазақша", ru: "Русский", uz: "Oʻzbekcha", en: "English", zh: "中文" };
export const CURRENCIES = ["KZT", "UZS", "RUB", "KGS", "EUR", "USD", "CNY"];
export const DEFAULT_CURRENCY = { kk: "KZT", ru: "RUB", uz: "UZS", en: "EUR", zh: "CNY" };

const store = window.localStorage;
let texts = {};
const listeners = new Set();

// --- Language and currency -----------------------------------------------------------------

function guessLocale() {
  for (const tag of navigator.languages || [navigator.language || "ru"]) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (LOCALES.includes(base)) return base;
  }
  return "ru";
}

export const prefs = {
  get locale() {
    const saved = store.getItem("lc.locale");
    return LOCALES.includes(saved) ? saved : guessLocale();
  },
  get currency() {
    const saved = store.getItem("lc.currency");
    return CURRENCIES.includes(saved) ? saved : DEFAULT_CURRENCY[this.locale];
  },
};

/** Load the page texts for the current locale (cached by the browser for a few minutes). */
export async function loadTexts() {
  const response = await fetch(`/web/i18n/${prefs.locale}.json`);
  texts = response.ok ? await response.json() : {};
  document.documentElement.lang = prefs.locale;
}

/** A text by key, with %(name)s placeholders filled in. */
export function t(key, params = {}) {
  const text = texts[key] ?? key;
  return text.replace(/%\((\w+)\)s/g, (_, name) => String(params[name] ?? ""));
}

/** "28 қараша", "28-noyabr", "November 28", "11月28日": a date in the page's language,
 * from CLDR patterns the server sends with the texts. */
export function dayMonth(isoDate) {
  const [, month, day] = String(isoDate).slice(0, 10).split("-").map(Number);
  const pattern = texts["date.day_month"] || "d MMMM";
  return pattern.replace(/MMMM|M|d/g, (token) =>
    token === "MMMM" ? texts[`month.${month}`] || String(month) : token === "M" ? String(month) : String(day),
  );
}

/** Switch language and/or currency; every registered view re-renders, nothing reloads. */
export async function setPrefs({ locale, currency }) {
  if (locale && locale !== prefs.locale) {
    store.setItem("lc.locale", locale);
    if (!store.getItem("lc.currency.chosen")) store.removeItem("lc.currency");
    await loadTexts();
  }
  if (currency) {
    store.setItem("lc.currency", currency);
    store.setItem("lc.currency.chosen", "1");
  }
  for (const listener of listeners) await listener(prefs);
}

/** Call ``fn`` whenever the language or currency changes. */
export function onPrefsChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

// --- Session --------------------------------------------------------------------------------

export const session = {
  get token() {
    return store.getItem("lc.token");
  },
  get user() {
    try {
      return JSON.parse(store.getItem("lc.user") || "null");
    } catch {
      return null;
    }
  },
  save(token, user) {
    store.setItem("lc.token", token);
    store.setItem("lc.user", JSON.stringify(user));
  },
  clear() {
    store.removeItem("lc.token");
    store.removeItem("lc.user");
  },
};

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "http_error";
    this.details = error.details || {};
  }
}

/**
 * Call the API. ``path`` is under /api/v1; locale and currency go along as query
 * parameters, the session's token as a bearer token. JSON in, JSON out; errors throw
 * ``ApiError`` with the server's localized message.
 */
export async function api(path, { method = "GET", body, form, headers = {}, auth = true, query = {} } = {}) {
  const url = new URL(`/api/v1${path}`, window.location.origin);
  const params = { locale: prefs.locale, currency: prefs.currency, ...query };
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  const init = { method, headers: { Accept: "application/json", ...headers } };
  if (auth && session.token) init.headers.Authorization = `Bearer ${session.token}`;
  if (form) {
    init.body = form;
  } else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (!response.ok) {
    if (response.status === 401 && auth && session.token) session.clear();
    throw new ApiError(response.status, data);
  }
  return data;
}

/** A fresh key for one money-moving request (kept for its retries). */
export function idempotencyKey() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`;
}

export async function signIn(email, password) {
  const form = new URLSearchParams({ username: email, password });
  const response = await fetch("/api/v1/auth/token", {
    method: "POST",
    body: form,
    headers: { Accept: "application/json" },
  });
  const data = await response.json();
  if (!response.ok) throw new ApiError(response.status, data);
  session.save(data.access_token, null);
  const me = await api("/me");
  session.save(data.access_token, me);
  return me;
}

export async function register({ email, password, display_name, role }) {
  await api("/auth/register", {
    method: "POST",
    auth: false,
    body: { email, password, display_name, role, locale: prefs.locale, currency: prefs.currency },
  });
  return signIn(email, password);
}

/** A guest token for watching (kept only for this tab). */
export async function guestToken() {
  const cached = window.sessionStorage.getItem("lc.guest");
  if (cached) return cached;
  const data = await api("/auth/guest", { method: "POST", auth: false });
  window.sessionStorage.setItem("lc.guest", data.access_token);
  return data.access_token;
}

// --- DOM --------------------------------------------------------------------------------------

/** ``h("button", {class: "x", onclick: fn}, "text", child)``: elements without innerHTML. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key === "style" && typeof value === "object") {
      Object.assign(el.style, value); // through the CSSOM: allowed by the page's CSP
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

/** A short-lived message at the bottom of the screen. */
export function toast(message, kind = "info") {
  let box = document.getElementById("toasts");
  if (!box) {
    box = h("div", { id: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(box);
  }
  const item = h("div", { class: `toast toast-${kind}` }, message);
  box.append(item);
  setTimeout(() => item.remove(), 5000);
}

// --- The page header ---------------------------------------------------------------------------

/**
 * The header every page shares: title, navigation, language and currency pickers, and the
 * signed-in user. ``onAuth`` runs after signing in or out.
 */
export function mountHeader(root, { active, onAuth, signInRole = "viewer" } = {}) {
  const render = () => {
    const user = session.user;
    const nav = [
      ["watch", "/", t("nav.watch")],
      ["host", "/host", t("nav.host")],
      ["merchant", "/merchant", t("nav.merchant")],
    ].map(([key, href, label]) =>
      h("a", { href, class: key === active ? "active" : null, "aria-current": key === active ? "page" : null }, label),
    );
    const language = h(
      "select",
      { "aria-label": t("pick.language"), id: "pick-locale", onchange: (e) => setPrefs({ locale: e.target.value }) },
      LOCALES.map((code) => h("option", { value: code, selected: code === prefs.locale }, LOCALE_NAMES[code])),
    );
    const currency = h(
      "select",
      { "aria-label": t("pick.currency"), id: "pick-currency", onchange: (e) => setPrefs({ currency: e.target.value }) },
      CURRENCIES.map((code) => h("option", { value: code, selected: code === prefs.currency }, code)),
    );
    const who = user
      ? h(
          "span",
          { class: "who" },
          h("span", { class: "who-name" }, t("auth.signed_in_as", { name: user.display_name })),
          h(
            "button",
            {
              class: "link",
              onclick: async () => {
                session.clear();
                render();
                if (onAuth) await onAuth(null);
              },
            },
            t("auth.sign_out"),
          ),
        )
      : h(
          "button",
          {
            class: "link",
            id: "open-sign-in",
            onclick: () =>
              openSignIn(
                async (signedIn) => {
                  render();
                  if (onAuth) await onAuth(signedIn);
                },
                { role: signInRole },
              ),
          },
          t("auth.sign_in"),
        );
    clear(
      root,
      h("a", { href: "/", class: "brand" }, h("span", { class: "dot", "aria-hidden": "true" }), t("app.name")),
      h("nav", {}, nav),
      h("div", { class: "pickers" }, language, currency, who),
    );
  };
  render();
  onPrefsChange(render);
  return render;
}

/** The sign-in / sign-up dialog. ``done(user)`` runs once signed in. */
export function openSignIn(done, { role = "viewer" } = {}) {
  let mode = "in";
  const dialog = h("dialog", { class: "sheet", id: "sign-in" });
  const render = (error = "") => {
    const email = h("input", { type: "email", name: "email", required: true, autocomplete: "email" });
    const password = h("input", {
      type: "password",
      name: "password",
      required: true,
      // Signing up: the server's default policy (its localized 422 explains any other rule).
      // Signing in: no minimum, so an account made under an older policy still gets in.
      minlength: mode === "in" ? null : 10,
      autocomplete: mode === "in" ? "current-password" : "new-password",
    });
    const name = h("input", { type: "text", name: "display_name", required: true, maxlength: 80 });
    const form = h(
      "form",
      {
        method: "dialog",
        onsubmit: async (event) => {
          event.preventDefault();
          try {
            const user =
              mode === "in"
                ? await signIn(email.value, password.value)
                : await register({ email: email.value, password: password.value, display_name: name.value, role });
            dialog.close();
            dialog.remove();
            await done(user);
          } catch (err) {
            render(err.message);
          }
        },
      },
      h("h2", {}, mode === "in" ? t("auth.sign_in") : t("auth.register")),
      mode === "up" ? h("label", {}, t("auth.name"), name) : null,
      h("label", {}, t("auth.email"), email),
      h("label", {}, t("auth.password"), password),
      error ? h("p", { class: "error", role: "alert" }, error) : null,
      h(
        "div",
        { class: "row" },
        h("button", { type: "submit", class: "primary" }, mode === "in" ? t("auth.sign_in") : t("auth.register")),
        h(
          "button",
          { type: "button", class: "link", onclick: () => ((mode = mode === "in" ? "up" : "in"), render()) },
          mode === "in" ? t("auth.register") : t("auth.sign_in"),
        ),
        h("button", { type: "button", class: "link", onclick: () => (dialog.close(), dialog.remove()) }, t("common.cancel")),
      ),
    );
    clear(dialog, form);
  };
  render();
  document.body.append(dialog);
  dialog.showModal();
}

/** Load texts, then run the page's ``start``; a failure shows a readable message. */
export async function boot(start) {
  try {
    await loadTexts();
    await start();
  } catch (err) {
    console.error(err);
    document.body.append(h("p", { class: "error fatal" }, err.message || String(err)));
  }
}
