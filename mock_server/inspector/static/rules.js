// The rules: each one's JSON, its counts and fire history; add one from JSON, remove one.

import { api, errorText } from "./api.js";
import { el, json, say } from "./dom.js";

const COUNTERS = new Set(["id", "matched", "fired", "history"]);
let lastKey = "";

export async function refreshRules() {
  const result = await api("/bria-mock/rules");
  if (!result.ok) return say(`rules: ${errorText(result)}`, true);
  const rules = result.data.rules;
  document.getElementById("rule-count").textContent = `(${rules.length})`;
  document.getElementById("rules-empty").hidden = rules.length > 0;
  const key = JSON.stringify(rules);
  if (key === lastKey) return;
  lastKey = key;
  document.getElementById("rule-list").replaceChildren(...rules.map(ruleCard));
}

function ruleCard(rule) {
  const spec = Object.fromEntries(Object.entries(rule).filter(([name]) => !COUNTERS.has(name)));
  return el("li", { class: "rule", "data-rule-id": rule.id },
    el("div", { class: "head" },
      el("strong", { text: rule.id }),
      el("span", { text: `matched ${rule.matched}` }),
      el("span", { text: `fired ${rule.fired}` }),
      el("button", { type: "button", "aria-label": `Remove rule ${rule.id}`, onclick: () => removeRule(rule) }, "Remove"),
    ),
    historyStrip(rule.history),
    json(spec),
  );
}

// One mark per matching call, oldest first: filled where the rule fired.
function historyStrip(history) {
  const fired = history.filter(Boolean).length;
  const label = `Fire history: ${fired} of the last ${history.length} matching calls fired`;
  return el("div", { class: "strip", role: "img", "aria-label": label, title: label },
    history.map((fire) => el("span", { class: fire ? "mark fired" : "mark" })));
}

async function removeRule(rule) {
  // The page calls without an api_token: it sees, and may remove, the rules of every namespace.
  const result = await api(`/bria-mock/rules/${encodeURIComponent(rule.id)}`, { method: "DELETE" });
  say(result.ok ? `Removed rule ${rule.id}.` : `Remove ${rule.id}: ${errorText(result)}`, !result.ok);
  await refreshRules();
}

async function addRule(event) {
  event.preventDefault();
  const text = document.getElementById("rule-json").value;
  const error = document.getElementById("rule-error");
  const textarea = document.getElementById("rule-json");
  let spec;
  try {
    spec = JSON.parse(text);
  } catch (problem) {
    error.textContent = `Not JSON: ${problem.message}`;
    textarea.setAttribute("aria-invalid", "true");
    return;
  }
  const result = await api("/bria-mock/rules", { method: "POST", body: spec });
  error.textContent = result.ok ? "" : errorText(result);
  textarea.toggleAttribute("aria-invalid", !result.ok);
  if (result.ok) say(`Added rule ${result.data.rules.map((rule) => rule.id).join(", ")}.`);
  await refreshRules();
}

export function setUpRules() {
  document.getElementById("rule-form").addEventListener("submit", addRule);
}
