// The header every screen shares: who is signed in (name and role), sign-out, the language switch.
import { t, langSwitch } from "./i18n.js";
import { visible } from "./dom.js";

// The path to come back to after signing in (same-origin, relative: the server checks it again).
export function signinUrl() {
  return "/signin?next=" + encodeURIComponent(location.pathname + location.search);
}

// Who the session speaks for (GET /api/me); to the sign-in page, and back, without a session.
export async function whoAmI() {
  const r = await fetch("/api/me", { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (r.status === 401) {
    location.assign(signinUrl());
    return new Promise(() => {}); // the page is going away
  }
  if (!r.ok) throw new Error(`/api/me: HTTP ${r.status}`);
  return r.json();
}

export function roleWords(me) {
  return t(`common.role.${me.kind}`, { id: me.where || me.subject || "" });
}

async function signOut() {
  await fetch("/signout", { method: "POST", credentials: "same-origin" });
  location.assign("/signin");
}

// Fills `slot` (an element in the page's header) with the name, the role, sign-out and the language
// switch; returns `me`.
export async function mountHeader(slot, me = null) {
  const who = me || (await whoAmI());
  const name = document.createElement("span");
  name.className = "who";
  name.id = "signed-in";
  name.textContent = visible(t("common.signedin", { name: who.name, role: roleWords(who) }));
  name.title = who.role;
  const out = document.createElement("button");
  out.type = "button";
  out.className = "signout";
  out.textContent = t("common.signout");
  out.addEventListener("click", () => signOut().catch(() => location.assign("/signin")));
  slot.replaceChildren(name, langSwitch(), out);
  return who;
}
