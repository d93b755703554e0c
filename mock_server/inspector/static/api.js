// Requests to the fake's controls. Every request carries the admin token once the user gave it
// (kept in sessionStorage: this tab only); every write is JSON, as the controls require.

const TOKEN_KEY = "bria-mock-admin-token";
const TOKEN_HEADER = "x-bria-mock-admin-token";
const listeners = { unauthorized: () => {} };

export function onUnauthorized(callback) {
  listeners.unauthorized = callback;
}

export function setAdminToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

function headersFor(method, extra) {
  const headers = { Accept: "application/json", ...extra };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers[TOKEN_HEADER] = token;
  if (method !== "GET") headers["Content-Type"] = "application/json";
  return headers;
}

// Returns { ok, status, data }; data is the parsed JSON answer (or null). Never throws on an HTTP error.
export async function api(path, { method = "GET", body, headers = {} } = {}) {
  const init = { method, headers: headersFor(method, headers), cache: "no-store" };
  if (body !== undefined) init.body = typeof body === "string" ? body : JSON.stringify(body);
  else if (method !== "GET") init.body = "{}";
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    return { ok: false, status: 0, data: { error: { details: `the fake does not answer (${error})` } } };
  }
  if (response.status === 401) listeners.unauthorized();
  const data = await response.json().catch(() => null);
  return { ok: response.ok, status: response.status, data };
}

// The details of Bria's error envelope, or a fallback text.
export function errorText(result) {
  const error = result.data && result.data.error;
  if (error && (error.details || error.message)) return error.details || error.message;
  return `HTTP ${result.status}`;
}

// Images are fetched like the rest (an <img src> could not send the admin token) and shown from
// object URLs. An image's bytes never change for its path (a job's result, an exchange's input),
// so each is fetched once; the oldest are let go past MAX_IMAGES.
const MAX_IMAGES = 200;
const images = new Map();

export function imageUrl(path) {
  if (!images.has(path)) {
    images.set(path, fetchImage(path));
    if (images.size > MAX_IMAGES) {
      const [oldest, url] = images.entries().next().value;
      images.delete(oldest);
      url.then((objectUrl) => objectUrl && URL.revokeObjectURL(objectUrl));
    }
  }
  return images.get(path);
}

async function fetchImage(path) {
  try {
    const response = await fetch(path, { headers: headersFor("GET", { Accept: "image/*" }) });
    if (!response.ok) {
      images.delete(path);  // e.g. a job not finished yet: ask again next time
      return null;
    }
    return URL.createObjectURL(await response.blob());
  } catch {
    images.delete(path);
    return null;
  }
}
