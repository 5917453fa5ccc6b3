// The auditor's page: the audit trail's check at a glance, and where to read the trail.
import { loadI18n, applyI18n, t } from "./i18n.js";
import { mountHeader } from "./header.js";
import { api, errorWords } from "./parties.js";

async function main() {
  await loadI18n(["party"]);
  applyI18n();
  await mountHeader(document.getElementById("header-slot"));
  const out = document.getElementById("verify");
  try {
    const v = await api("/api/audit/verify");
    out.textContent = v.ok ? t("party.auditor.ok", { count: v.checked ?? "" }) : t("party.auditor.problems", { count: (v.problems || []).length });
  } catch (err) {
    out.textContent = errorWords(err);
  }
}

main();
