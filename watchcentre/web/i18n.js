// The screens' words in French and English. Plain ES module, no build step, no dependency.
// Catalogs: /console/locales/<lang>/<bundle>.json (flat keys, "common.signout"); code labels (crime
// types, countries) from GET /api/labels; event names are catalog keys "event.<type>".
// Every word shown comes from a catalog, so a translator finds all of them there (a test checks
// that every key used in web/*.js and web/*.html exists in both languages).
// What the server writes in English (routing explanations, rejection reasons, API refusals) is
// translated by pattern: web/server-patterns.json maps each sentence's shape to a "server.*" key.

export const LANGS = ["en", "fr"];
export let lang = "en";

const catalog = new Map();
let serverPatterns = [];
const codes = { crime_type: {}, country: {} };
const warned = new Set();

function chooseLang() {
  let saved = null;
  try {
    saved = localStorage.getItem("wc-lang");
  } catch (_) {
    // storage refused (privacy settings): the browser's languages decide
  }
  if (LANGS.includes(saved)) return saved;
  const wanted = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || ""];
  return wanted.some((l) => String(l).toLowerCase().startsWith("fr")) ? "fr" : "en";
}

async function getJson(url) {
  const r = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.json();
}

// Loads the catalogs of `bundles` (e.g. ["common", "party"]) and the code labels, in the chosen
// language. The labels need a session (the sign-in page passes { labels: false }); without them,
// codes are shown as they are.
export async function loadI18n(bundles = ["common"], { labels: withLabels = true } = {}) {
  lang = chooseLang();
  document.documentElement.lang = lang;
  const wanted = Array.from(new Set(["common", "server", ...bundles]));
  const [parts, labels, patterns] = await Promise.all([
    Promise.all(wanted.map((b) => getJson(`/console/locales/${lang}/${b}.json`))),
    withLabels ? getJson(`/api/labels?lang=${lang}`).catch(() => null) : null,
    getJson("/console/server-patterns.json").catch(() => []),
  ]);
  serverPatterns = patterns.map((p) => ({ ...p, re: new RegExp(p.pattern) }));
  catalog.clear();
  for (const part of parts) for (const [k, v] of Object.entries(part)) catalog.set(k, v);
  if (labels) {
    codes.crime_type = labels.crime_types || {};
    codes.country = labels.countries || {};
  }
  return lang;
}

export function has(key) {
  return catalog.has(key);
}

// The words of `key`, with {name} placeholders filled from `vars`; the key itself when missing.
export function t(key, vars) {
  let text = catalog.get(key);
  if (text === undefined) {
    if (!warned.has(key)) {
      warned.add(key);
      console.warn(`i18n: no "${key}" in the ${lang} catalogs`);
    }
    return key;
  }
  if (vars) text = text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
  return text;
}

// A line the server wrote (in English), in the screen's language: the first pattern of
// server-patterns.json it matches gives the key, its named groups the placeholders; groups listed in
// "nested" are server sentences themselves, groups in "words" codes looked up as prefix + code.
// The line as it is when no pattern matches. Plain text: callers set it as textContent.
export function serverText(line) {
  if (typeof line !== "string" || !line) return line ?? "";
  for (const p of serverPatterns) {
    const m = p.re.exec(line);
    if (!m || !catalog.has(p.key)) continue;
    const vars = { ...m.groups };
    for (const name of p.nested || []) if (vars[name] !== undefined) vars[name] = serverText(vars[name]);
    for (const [name, prefix] of Object.entries(p.words || {})) {
      if (vars[name] !== undefined && catalog.has(prefix + vars[name])) vars[name] = catalog.get(prefix + vars[name]);
    }
    return t(p.key, vars);
  }
  return line;
}

// Words for a code: kind is "crime_type", "country" or "event". Falls back to the code.
// Callers put the code in the element's title, so it shows on hover.
export function label(kind, code) {
  if (code === undefined || code === null || code === "") return "";
  if (kind === "event") return catalog.get(`event.${code}`) ?? String(code);
  const table = codes[kind] || {};
  const key = kind === "country" ? String(code).toUpperCase() : String(code);
  return table[key] ?? String(code);
}

// [data-i18n="key"] → textContent; [data-i18n-attr="placeholder:key;aria-label:key"] → attributes.
export function applyI18n(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of el.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":").map((s) => s.trim());
      if (attr && key) el.setAttribute(attr, t(key));
    }
  }
}

function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

// A time in the browser's zone, with the zone's name; the date too when not today (or withDate).
export function fmtTime(iso, { withDate = false } = {}) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const now = new Date();
  const options = { hour: "2-digit", minute: "2-digit", timeZoneName: "short" };
  if (withDate || !sameDay(d, now)) {
    Object.assign(options, { day: "numeric", month: "short" });
    if (d.getFullYear() !== now.getFullYear()) options.year = "numeric";
  }
  return new Intl.DateTimeFormat(lang, options).format(d);
}

// "2 h 05 min" (no direction).
export function fmtSpan(seconds) {
  const s = Math.abs(Math.round(Number(seconds) || 0));
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  if (d) return t("common.duration.days", { d, h });
  if (h) return t("common.duration.hours", { h, m: String(m).padStart(2, "0") });
  return t("common.duration.minutes", { m });
}

// Time left in words: "in 2 h 05 min" / "dans 2 h 05 min"; "late by …" / "en retard de …".
export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const span = fmtSpan(seconds);
  return seconds < 0 ? t("common.duration.late", { time: span }) : t("common.duration.in", { time: span });
}

// A button that switches to the other language (kept in localStorage["wc-lang"]) and reloads.
export function langSwitch() {
  const other = lang === "fr" ? "en" : "fr";
  const button = document.createElement("button");
  button.type = "button";
  button.className = "lang-switch";
  button.lang = other;
  button.textContent = t(`common.lang.${other}`);
  button.title = t("common.lang.switch");
  button.addEventListener("click", () => {
    try {
      localStorage.setItem("wc-lang", other);
    } catch (_) {
      return;
    }
    location.reload();
  });
  return button;
}
