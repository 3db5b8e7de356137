// api.js — the dashboard's calls to the primary's API: same origin, the session cookie, JSON both ways.
// A 401 means the session is gone: back to the sign-in page, coming back here afterwards.

export class ApiError extends Error {
  constructor(status, body) {
    const parts = [body && body.message ? body.message : `HTTP ${status}`];
    if (body && body.detail) parts.push(body.detail);
    for (const v of (body && body.validations) || []) parts.push(`${v.field}: ${v.detail}`);
    super(parts.join(' — '));
    this.status = status;
    this.body = body;
  }
}

// Signing out: no call starts once it began, and the session ends only after the calls in flight have
// been answered, so that no poll of the page meets the ended session (a 401 in the middle of signing out).
let leaving = false;
const inflight = new Set();

export async function api(method, path, body, opts = {}) {
  if (leaving) return new Promise(() => {}); // the page is going away
  const p = call(method, path, body, opts);
  inflight.add(p);
  try {
    return await p;
  } finally {
    inflight.delete(p);
  }
}

// Ends the session (POST /api/v2/users/logout) after the calls in flight; never throws.
export async function logout() {
  leaving = true;
  await Promise.allSettled([...inflight]);
  try {
    await call('POST', '/api/v2/users/logout', undefined, { redirectOn401: false });
  } catch {
    // signed out already, or the primary is gone: the sign-in page says what it can
  }
}

async function call(method, path, body, { redirectOn401 = true } = {}) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  let data = null;
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { message: text.slice(0, 200) };
    }
  }
  if (res.status === 401 && redirectOn401) {
    location.assign('/login?redirect=' + encodeURIComponent(location.pathname));
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}
