// The sign-in page in the reader's language (the form itself works without this script).
import { loadI18n, applyI18n, langSwitch } from "./i18n.js";

loadI18n([], { labels: false }).then(() => {
  applyI18n();
  document.getElementById("lang-slot").replaceChildren(langSwitch());
});
