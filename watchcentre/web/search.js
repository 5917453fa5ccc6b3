// Search and related messages: a self-contained ES module the console and the post/unit screens import.
//   mountSearch(container)                 a search box, filters, results with highlighted fragments, paging
//   relatedPanel(container, messageId, sender)  the messages sharing an identifier with one message, and why
// Everything from the server is set as text (dom.js builds text nodes): a highlighted fragment is a
// <mark> element whose text is the fragment, never markup. Need-to-know is the server's (the same
// calls answer a post with its own messages only). Strings in French and English, gathered here
// until the shared i18n module lands: the page's <html lang> chooses.
import { h, append, clear, dateTime } from "./dom.js";

const STRINGS = {
  en: {
    search: "Search",
    placeholder: 'Words, "a phrase", prefix*: accents and case do not matter',
    since: "Since",
    until: "Until",
    country: "Country",
    more: "More results",
    none: "Nothing found.",
    searching: "Searching…",
    identifiers: "Identifiers",
    related: "Related messages",
    noRelated: "No other message you may see shares an identifier with this one.",
    shares: "shares",
    failed: "Search failed",
    kinds: { phone: "phone", email: "e-mail", iban: "IBAN", document: "document", imo: "IMO", plate: "plate", btc: "bitcoin", eth: "ethereum" },
  },
  fr: {
    search: "Rechercher",
    placeholder: "Mots, « une phrase », préfixe* : accents et casse indifférents",
    since: "Depuis",
    until: "Jusqu'au",
    country: "Pays",
    more: "Plus de résultats",
    none: "Aucun résultat.",
    searching: "Recherche…",
    identifiers: "Identifiants",
    related: "Messages liés",
    noRelated: "Aucun autre message visible ne partage d'identifiant avec celui-ci.",
    shares: "partage",
    failed: "Échec de la recherche",
    kinds: { phone: "téléphone", email: "courriel", iban: "IBAN", document: "pièce d'identité", imo: "IMO", plate: "plaque", btc: "bitcoin", eth: "ethereum" },
  },
};

function strings() {
  const lang = (document.documentElement.lang || "en").slice(0, 2).toLowerCase();
  return STRINGS[lang] || STRINGS.en;
}

async function getJson(path) {
  const r = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (r.status === 401) {
    location.assign("/signin");
    throw new Error("signed out");
  }
  const body = (r.headers.get("Content-Type") || "").includes("json") ? await r.json() : null;
  if (!r.ok) {
    const e = (body && body.error) || {};
    throw new Error(e.field ? `${e.field}: ${e.message}` : e.message || `HTTP ${r.status}`);
  }
  return body;
}

// Fragments [{text, hit}] as text nodes, hits inside <mark>.
export function fragments(list) {
  return (list || []).map((f) => (f.hit ? h("mark", null, f.text) : f.text));
}

function kindName(s, kind) {
  return s.kinds[kind] || kind;
}

function result(item, onOpen) {
  const link = h("button", { type: "button", class: "link search-subject", onclick: () => onOpen(item) }, fragments(item.subject_fragments));
  return h(
    "li",
    { class: "search-hit", dataset: { id: String(item.id) } },
    h("div", { class: "search-head" }, link, " ", h("span", { class: "muted" }, item.sender || "", " · ", dateTime(item.received_at))),
    h("p", { class: "search-body" }, fragments(item.body_fragments)),
  );
}

export function mountSearch(container, { onOpen } = {}) {
  const s = strings();
  const open = onOpen || ((item) => container.dispatchEvent(new CustomEvent("search-open", { detail: item, bubbles: true })));
  const q = h("input", { type: "search", name: "q", maxlength: "200", required: true, placeholder: s.placeholder, "aria-label": s.search });
  const since = h("input", { type: "date", name: "since", "aria-label": s.since });
  const until = h("input", { type: "date", name: "until", "aria-label": s.until });
  const country = h("input", { name: "country", maxlength: "2", size: "3", placeholder: "ES", "aria-label": s.country });
  const status = h("p", { class: "muted", role: "status", "aria-live": "polite" });
  const list = h("ol", { class: "search-results" });
  const more = h("button", { type: "button", hidden: true }, s.more);
  let next = null;
  let params = null;

  async function load(append_) {
    status.textContent = s.searching;
    const p = new URLSearchParams(params);
    if (append_ && next) p.set("after", next);
    try {
      const page = await getJson(`/api/search?${p}`);
      if (!append_) clear(list);
      append(list, page.items.map((item) => result(item, open)));
      next = page.next;
      more.hidden = !next;
      status.textContent = list.childElementCount ? "" : s.none;
    } catch (err) {
      status.textContent = `${s.failed}: ${err.message}`;
      more.hidden = true;
    }
  }

  const form = h(
    "form",
    {
      class: "search-form",
      role: "search",
      autocomplete: "off",
      onsubmit: (ev) => {
        ev.preventDefault();
        params = { q: q.value, limit: "20" };
        if (since.value) params.since = `${since.value}T00:00:00Z`;
        if (until.value) params.until = `${until.value}T00:00:00Z`;
        if (country.value) params.country = country.value;
        next = null;
        load(false);
      },
    },
    q,
    " ",
    since,
    " ",
    until,
    " ",
    country,
    " ",
    h("button", { type: "submit", class: "primary" }, s.search),
  );
  more.addEventListener("click", () => load(true));
  clear(container);
  append(container, form, status, list, more);
  return { form, list };
}

export async function relatedPanel(container, messageId, sender) {
  const s = strings();
  clear(container);
  const p = new URLSearchParams();
  if (sender) p.set("sender", sender);
  let detail;
  try {
    detail = await getJson(`/api/messages/${encodeURIComponent(messageId)}?${p}`);
  } catch (err) {
    append(container, h("p", { class: "error" }, err.message));
    return;
  }
  const ids = detail.identifiers || [];
  if (ids.length) {
    append(
      container,
      h("h3", null, s.identifiers),
      h("ul", { class: "identifiers" }, ids.map((i) => h("li", null, h("span", { class: "tag" }, kindName(s, i.kind)), " ", h("code", null, i.value)))),
    );
  }
  append(container, h("h3", null, s.related));
  const related = detail.related || [];
  if (!related.length) {
    append(container, h("p", { class: "muted" }, s.noRelated));
    return;
  }
  append(
    container,
    h(
      "ul",
      { class: "related" },
      related.map((m) =>
        h(
          "li",
          { dataset: { id: String(m.id) } },
          h("strong", null, m.subject || m.message_id || ""),
          " ",
          h("span", { class: "muted" }, m.sender || "", " · ", dateTime(m.received_at)),
          h("div", { class: "why" }, s.shares, " ", m.shared.map((i, n) => [n ? ", " : "", `${kindName(s, i.kind)} ${i.value}`])),
        ),
      ),
    ),
  );
}
