// Calls to the Ponder API with the API key kept for this browser tab only.

const KEY = "ponder.key";

export function getKey() {
  return sessionStorage.getItem(KEY);
}

export function setKey(key) {
  sessionStorage.setItem(KEY, key);
}

export function clearKey() {
  sessionStorage.removeItem(KEY);
}

/** An error answered by the API: `status` (HTTP, or 0 when the server could not be
 * reached), `detail` (what to fix), `errors` (invalid fields, on a 422), `body`. */
export class ApiError extends Error {
  constructor(status, detail, body = null) {
    super(detail);
    this.name = "ApiError";
    this.status = status;
    this.detail = detail;
    this.body = body;
    this.errors = (body && Array.isArray(body.errors) && body.errors) || [];
  }
}

/** The key was refused: forget it and tell the page (which shows the sign-in form). */
function unauthorized(detail) {
  clearKey();
  window.dispatchEvent(new CustomEvent("ponder:unauthorized", { detail }));
}

export function authHeaders(extra = {}) {
  const key = getKey();
  return key ? { Authorization: `Bearer ${key}`, ...extra } : { ...extra };
}

async function call(path, { method = "GET", body, headers = {}, signal } = {}) {
  const init = { method, headers: authHeaders(headers), signal };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "The Ponder server could not be reached. Check that `ponder api` is running, then try again.");
  }
  if (!res.ok) throw await errorOf(res);
  return res;
}

export async function errorOf(res) {
  let body = null;
  let detail = `The server answered ${res.status} ${res.statusText}.`;
  try {
    body = await res.json();
    if (body && typeof body.detail === "string") detail = body.detail;
  } catch {
    // not JSON: keep the status line
  }
  if (res.status === 401) unauthorized(detail);
  return new ApiError(res.status, detail, body);
}

/** GET (or `method`) `path` and return its parsed JSON (null for an empty answer).
 * Throws ApiError for an error status. */
export async function api(path, options = {}) {
  const res = await call(path, options);
  if (res.status === 204) return null;
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

/** Like api() but returns the body as text (JSON Lines, CSV, ...). */
export async function apiText(path, options = {}) {
  const res = await call(path, options);
  return res.text();
}
