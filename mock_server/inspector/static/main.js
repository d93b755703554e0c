// The inspector's loop: everything is read from the admin API, newest first, every POLL_MS while
// the tab is visible; one refresh at a time, so a slow answer never piles requests on the fake.

import { onUnauthorized } from "./api.js";
import { askForToken, refreshState, setUpControls } from "./controls.js";
import { refreshExchanges, setUpExchanges } from "./exchanges.js";
import { refreshJobs, refreshWebhooks } from "./jobs.js";
import { refreshRules, setUpRules } from "./rules.js";

const POLL_MS = 1500;
let running = null;
let again = false;

async function refreshAll() {
  await Promise.all([refreshState(), refreshExchanges(), refreshJobs(), refreshRules(), refreshWebhooks()]);
}

// Run a refresh now, or right after the one in flight.
function refresh() {
  if (running) {
    again = true;
    return running;
  }
  running = refreshAll().finally(() => {
    running = null;
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
    if (again) {
      again = false;
      refresh();
    }
  });
  return running;
}

function poll() {
  if (!document.hidden) refresh();
}

onUnauthorized(askForToken);
setUpControls(refresh);
setUpExchanges(refresh);
setUpRules();
refresh().then(() => {
  // How long the first full view took, for people and for the page-load test.
  document.body.dataset.firstViewMs = String(Math.round(performance.now()));
});
setInterval(poll, POLL_MS);
