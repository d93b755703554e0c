// The controls (reset, clock, rate limit) and the state bar that is always in view.

import { api, errorText, setAdminToken } from "./api.js";
import { say } from "./dom.js";

export async function refreshState() {
  const result = await api("/bria-mock/state");
  if (!result.ok) return say(`state: ${errorText(result)}`, true);
  const state = result.data;
  const advanced = state.clock_advanced ?? 0;
  document.getElementById("state-clock").textContent = advanced > 0.5 ? `real time + ${advanced.toFixed(1)} s` : "real time";
  const perMinute = state.rate_limit.per_minute;
  document.getElementById("state-rate").textContent = perMinute ? `${perMinute} per minute` : "off";
  document.getElementById("state-jobs").textContent = String(state.jobs);
  document.getElementById("state-journal").textContent = `${state.journal} entries`;
}

async function control(path, body, headers, done) {
  const result = await api(path, { method: "POST", body, headers });
  say(result.ok ? done : `${path}: ${errorText(result)}`, !result.ok);
  return result.ok;
}

function rateLimitBody(text) {
  const value = text.trim();
  return /^\d+(\.\d+)?$/.test(value) ? { per_minute: Number(value) } : { plan: value };
}

export function setUpControls(refresh) {
  const on = (id, handler) => document.getElementById(id).addEventListener("submit", async (event) => {
    event.preventDefault();
    await handler();
    refresh();
  });
  on("reset-all", () => control("/bria-mock/reset", {}, {}, "Reset: everything is back to new."));
  on("reset-namespace", async () => {
    const input = document.getElementById("reset-token");
    // The token is sent once as the API sends it, and never shown or kept.
    await control("/bria-mock/reset", {}, { api_token: input.value }, "Reset that token's namespace.");
    input.value = "";
  });
  on("advance-clock", () => {
    const seconds = Number(document.getElementById("advance-seconds").value);
    return control("/bria-mock/clock/advance", { seconds }, {}, `Clock advanced by ${seconds} s.`);
  });
  on("rate-limit", () => {
    const body = rateLimitBody(document.getElementById("rate-value").value);
    return control("/bria-mock/rate-limit", body, {}, "Rate limit set.");
  });
  document.getElementById("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setAdminToken(document.getElementById("admin-token").value);
    document.getElementById("token-form").hidden = true;
    say("Admin token set for this tab.");
    refresh();
  });
}

export function askForToken() {
  const form = document.getElementById("token-form");
  if (!form.hidden) return;
  form.hidden = false;
  document.getElementById("admin-token").focus();
  say("The fake asks for its admin token.", true);
}
