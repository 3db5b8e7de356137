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

export async function api(method, path, body, { redirectOn401 = true } = {}) {
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
