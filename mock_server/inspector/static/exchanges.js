// The exchanges: newest first, filtered by the server, a page at a time; a row expands to its details.

import { api, errorText } from "./api.js";
import { ago, el, json, say, thumbnail } from "./dom.js";

const PAGE = 100;
const view = { before: null, expanded: new Set(), lastKey: "", lastIds: [] };

function filterQuery() {
  const query = new URLSearchParams({ limit: String(PAGE) });
  const fields = { endpoint: "filter-endpoint", status_class: "filter-status", namespace: "filter-namespace", q: "filter-text" };
  for (const [name, id] of Object.entries(fields)) {
    const value = document.getElementById(id).value.trim();
    if (value) query.set(name, value);
  }
  if (view.before !== null) query.set("before", String(view.before));
  return query;
}

export async function refreshExchanges() {
  const result = await api(`/bria-mock/exchanges?${filterQuery()}`);
  if (!result.ok) return say(`exchanges: ${errorText(result)}`, true);
  const listing = result.data;
  fillChoices("filter-endpoint", listing.endpoints);
  fillChoices("filter-namespace", listing.namespaces);
  document.getElementById("exchange-count").textContent = `(${listing.total} shown by the filters)`;
  document.getElementById("older").hidden = !listing.more;
  document.getElementById("newer").hidden = view.before === null;
  document.getElementById("exchanges-empty").hidden = listing.entries.length > 0;
  const key = JSON.stringify(listing.entries.map((entry) => [entry.id, entry.status]));
  if (key !== view.lastKey) {
    view.lastKey = key;
    renderRows(listing.entries);
  } else {
    updateAges(listing.entries);
  }
  await refreshDetails();
}

function fillChoices(selectId, values) {
  const select = document.getElementById(selectId);
  const known = new Set([...select.options].map((option) => option.value));
  for (const value of values) {
    if (!known.has(value)) select.append(el("option", { value, text: value }));
  }
}

function renderRows(entries) {
  const body = document.getElementById("exchange-rows");
  const focused = document.activeElement && document.activeElement.dataset.entry;
  body.replaceChildren(...entries.flatMap(rowsFor));
  view.lastIds = entries.map((entry) => entry.id);
  if (focused) {
    const button = body.querySelector(`button[data-entry="${focused}"]`);
    if (button) button.focus();
  }
}

function rowsFor(entry) {
  const open = view.expanded.has(entry.id);
  const toggle = el("button", {
    type: "button", class: "toggle", "aria-expanded": String(open), "data-entry": String(entry.id),
    "aria-label": `Details of exchange ${entry.id}`, onclick: () => toggleDetail(entry.id),
  }, open ? "−" : "+");
  const statusClass = entry.status === null ? "none" : `${Math.floor(entry.status / 100)}xx`;
  const row = el("tr", { id: `exchange-${entry.id}`, class: "exchange" },
    el("td", {}, toggle),
    el("td", { class: "age", "data-age": String(entry.age), text: ago(entry.age) }),
    el("td", { text: entry.method }),
    el("td", { class: "path", text: entry.path }),
    el("td", { class: "endpoint", text: entry.endpoint }),
    el("td", { class: `status status-${statusClass}`, text: entry.status === null ? "none" : String(entry.status) }),
    el("td", { text: `${Math.round(entry.duration_ms)} ms` }),
    el("td", { class: "digest", text: entry.namespace ? entry.namespace.slice(0, 12) : "–", title: entry.namespace || "" }),
    el("td", { text: entry.rules.join(", ") || "–" }),
  );
  if (!open) return [row];
  const detail = el("tr", { class: "detail", id: `detail-${entry.id}` }, el("td", { colspan: "9" }, el("p", { text: "Loading…" })));
  return [row, detail];
}

function updateAges(entries) {
  for (const entry of entries) {
    const cell = document.querySelector(`#exchange-${entry.id} .age`);
    if (cell) cell.textContent = ago(entry.age);
  }
}

function toggleDetail(id) {
  if (view.expanded.has(id)) view.expanded.delete(id);
  else view.expanded.add(id);
  view.lastKey = "";  // re-render the rows with the detail row added or removed
  refreshExchanges();
}

async function refreshDetails() {
  for (const id of view.expanded) {
    const cell = document.querySelector(`#detail-${id} > td`);
    if (!cell) continue;
    const result = await api(`/bria-mock/exchanges/${id}`);
    cell.replaceChildren(result.ok ? detailOf(result.data) : el("p", { class: "error", text: errorText(result) }));
  }
}

function detailOf(entry) {
  return el("div", { class: "exchange-detail" },
    imagesOf(entry),
    el("div", { class: "columns" },
      el("div", {}, el("h3", { text: "Request" }), el("h4", { text: "Headers" }), json(entry.request_headers),
        el("h4", { text: "Body (images as digests)" }), json(entry.body)),
      el("div", {}, el("h3", { text: `Response ${entry.status ?? "(none sent)"}` }), el("h4", { text: "Headers" }),
        json(entry.response_headers), el("p", { text: `${entry.response_bytes} bytes sent` }), jobOf(entry.job)),
    ),
  );
}

function imagesOf(entry) {
  const inputs = entry.inputs.map((input) => inputFigure(input));
  const job = entry.job;
  const result = job && job.result_url
    ? thumbnail(job.result_url, `result of ${job.request_id}`, `Result image of job ${job.request_id}`)
    : el("p", { class: "empty", text: job ? `Result: ${job.state}` : "No result image." });
  if (inputs.length === 0 && !job) return el("div");
  return el("div", { class: "images", role: "group", "aria-label": "Input and result images" },
    el("div", {}, el("h4", { text: "Input" }), el("div", { class: "images" }, inputs.length ? inputs : el("p", { class: "empty", text: "No image inputs." }))),
    el("div", {}, el("h4", { text: "Result" }), result),
  );
}

function inputFigure(input) {
  if (input.src) return thumbnail(input.src, input.field, `Input ${input.field}`);
  const why = input.url
    ? el("a", { href: input.url, rel: "noopener noreferrer", text: input.url })
    : el("span", { text: `sha256 ${input.summary.sha256}, ${input.summary.size} bytes, ${input.summary.format ?? "?"}` });
  return el("figure", {}, el("div", { class: "digest" }, why), el("figcaption", { text: `${input.field} (pixels not kept)` }));
}

function jobOf(job) {
  if (!job) return null;
  // To the job's card in the Jobs panel (its status body is read there, with the admin token if set).
  return el("p", {}, "Job ", el("a", { href: `#job-${job.request_id}`, text: job.request_id }), `: ${job.state}`);
}

export function setUpExchanges(refresh) {
  const filters = document.getElementById("exchange-filters");
  const restart = () => { view.before = null; view.lastKey = ""; refresh(); };
  filters.addEventListener("change", restart);
  filters.addEventListener("submit", (event) => { event.preventDefault(); restart(); });
  document.getElementById("filter-text").addEventListener("input", restart);
  document.getElementById("older").addEventListener("click", () => {
    view.before = view.lastIds[view.lastIds.length - 1] ?? null;
    view.lastKey = "";
    refresh();
  });
  document.getElementById("to-newest").addEventListener("click", restart);
}
