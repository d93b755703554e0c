// The jobs: state, how far each has progressed, how it ended, its status body and result.
// Reading them never counts as a status poll (the fake's /bria-mock/jobs only looks).

import { api, errorText } from "./api.js";
import { ago, el, json, thumbnail } from "./dom.js";

const opened = new Set();
let lastKey = "";

export async function refreshJobs() {
  const result = await api("/bria-mock/jobs");
  const list = document.getElementById("job-list");
  if (!result.ok) return void list.replaceChildren(el("li", { class: "error", text: errorText(result) }));
  const jobs = result.data.jobs;
  document.getElementById("job-count").textContent = `(${jobs.length})`;
  document.getElementById("jobs-empty").hidden = jobs.length > 0;
  // Redrawn when a job changes, and every ten seconds or so for the ages.
  const key = JSON.stringify(jobs.map((job) => [job.request_id, job.state, job.polls, Math.floor(job.age / 10)]));
  if (key === lastKey) return;
  lastKey = key;
  list.replaceChildren(...jobs.map(jobCard));
}

function jobCard(job) {
  const details = el("details", { ontoggle: (event) => toggled(job, event.target) }, el("summary", { text: "Status body" }));
  details.open = opened.has(job.request_id);
  if (details.open) loadStatus(job, details);
  return el("li", { class: "job", id: `job-${job.request_id}`, "data-request-id": job.request_id },
    el("div", { class: "head" },
      el("span", { class: `state-${job.state}`, text: job.state }),
      el("span", { text: job.endpoint }),
      el("span", { class: "empty", text: ago(job.age) }),
      el("span", { class: "digest", title: job.request_id, text: job.request_id.slice(0, 12) }),
    ),
    el("p", { text: timeline(job) }),
    job.error ? el("p", { class: "error", text: `${job.error.code}: ${job.error.details ?? job.error.message}` }) : null,
    job.result_url ? thumbnail(job.result_url, "result", `Result image of job ${job.request_id}`) : null,
    details,
  );
}

// IN_PROGRESS: the polls and seconds still needed; ended: how many polls it took.
function timeline(job) {
  const kind = job.sync ? "sync" : "async";
  if (!job.progress) return `${kind}, ${job.polls} status poll(s) so far`;
  const progress = job.progress;
  if (progress.forever) return `${kind}: held IN_PROGRESS forever by a rule; ${job.polls} poll(s)`;
  return `${kind}: ${job.polls} poll(s) so far; ends ${progress.ending} after ${progress.polls_left} more poll(s)` +
    ` and ${progress.seconds_left} s`;
}

function toggled(job, details) {
  if (details.open) opened.add(job.request_id);
  else opened.delete(job.request_id);
  if (details.open) loadStatus(job, details);
}

async function loadStatus(job, details) {
  const result = await api(job.status_url);
  const shown = result.ok ? json(result.data.status_body) : el("p", { class: "error", text: errorText(result) });
  details.querySelector("pre, p")?.remove();
  details.append(shown);
}

// Webhook deliveries, when the fake records them (GET /bria-mock/webhooks); a 404 means it does not,
// and the page stops asking (a fake does not gain the route while it runs).
let webhooksRecorded = true;

export async function refreshWebhooks() {
  if (!webhooksRecorded) return;
  const body = document.getElementById("webhook-body");
  const result = await api("/bria-mock/webhooks");
  if (result.status === 404) {
    webhooksRecorded = false;
    return void body.replaceChildren(el("p", { class: "empty", text: "Webhooks are not recorded by this fake." }));
  }
  if (!result.ok) return void body.replaceChildren(el("p", { class: "error", text: errorText(result) }));
  const deliveries = byJob(result.data.attempts ?? []);
  if (deliveries.length === 0) return void body.replaceChildren(el("p", { class: "empty", text: "No webhook deliveries." }));
  body.replaceChildren(el("ul", { class: "cards" }, deliveries.map(deliveryCard)));
}

// The route lists attempts, oldest first: one card a job, its attempts in order, newest job first.
function byJob(attempts) {
  const jobs = new Map();
  for (const attempt of attempts) {
    if (!jobs.has(attempt.request_id)) jobs.set(attempt.request_id, { request_id: attempt.request_id, attempts: [] });
    jobs.get(attempt.request_id).attempts.push(attempt);
  }
  return [...jobs.values()].reverse();
}

function deliveryCard(delivery) {
  const attempts = delivery.attempts ?? [];
  const statuses = Array.isArray(attempts) ? attempts.map((a) => a.status ?? a.error ?? "?").join(", ") : String(attempts);
  return el("li", {},
    el("div", { class: "head" },
      el("span", { text: delivery.request_id ?? delivery.id ?? "delivery" }),
      el("span", { text: `attempts: ${Array.isArray(attempts) ? attempts.length : attempts}` }),
      el("span", { text: `receiver: ${statuses || delivery.status || "–"}` }),
    ),
    el("details", {}, el("summary", { text: "JSON" }), json(delivery)),
  );
}
