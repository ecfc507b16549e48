// The gateway in cookie mode: the browser sends the HttpOnly session cookie, this code never
// sees a token. Every change carries X-Requested-With (the gateway's CSRF check).

const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/** An answer that was not 2xx, in the gateway's one error shape. */
export class ApiError extends Error {
  constructor(status, code, description) {
    super(description || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

/** A client for the gateway at `base` (its origin, e.g. http://127.0.0.1:8000). */
export function gatewayClient(base) {
  async function call(method, path, { body, headers = {} } = {}) {
    const init = { method, credentials: "include", headers: { ...headers } };
    if (UNSAFE.has(method)) init.headers["X-Requested-With"] = "fetch";
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(new URL(path, base), init);
    } catch {
      throw new ApiError(0, "network_error", "The gateway cannot be reached.");
    }
    const text = await response.text();
    const data = text ? JSON.parse(text) : null;
    if (!response.ok) {
      throw new ApiError(response.status, data?.error, data?.error_description);
    }
    return { data, etag: response.headers.get("ETag") };
  }

  return {
    login: (username, password) => call("POST", "/auth/session", { body: { username, password } }),
    logout: () => call("DELETE", "/auth/session"),
    me: () => call("GET", "/auth/me"),
    listVenues: (link) => call("GET", link || "/venues?limit=5"),
    getVenue: (id) => call("GET", `/venues/${encodeURIComponent(id)}`),
    createVenue: (venue) => call("POST", "/venues", { body: venue }),
    updateVenue: (id, changes, etag) =>
      call("PATCH", `/venues/${encodeURIComponent(id)}`, {
        body: changes,
        headers: { "If-Match": etag },
      }),
  };
}
