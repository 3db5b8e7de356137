// proxy.js — the workspace-proxy picker's model: the regions, their measured latencies, the user's choice
// and the region the page actually uses for links (docs/dashboard.md, "Picker rules").
//
//  - Regions come from GET /api/v2/regions, fetched again every REGIONS_MS (the primary's health checker
//    decides `healthy`).
//  - Latency: GET <path_app_url>/latency-check?cache_bust=<6 chars> with X-LATENCY-CHECK: true (a non-simple
//    request: the CORS preflight takes the connection set-up), timed by the Performance API as
//    responseStart - requestStart (`accurate`), or the entry's duration when the timing is hidden. One
//    sample per region per round, every healthy region in parallel; a stored report younger than REUSE_MS
//    is used instead of a probe; "refresh" probes everything now.
//  - localStorage: `user-selected-proxy` (the chosen Region's JSON) and `workspace-proxy-latencies` (region
//    id -> [{accurate, latencyMS, at}], the last `workspace-proxy-latencies-max` (default 1) kept, entries
//    older than 7 days or of regions no longer listed dropped). Other tabs follow through `storage` events.
//  - Selection: the saved choice while it is listed and usable, else `primary`. With no saved choice, the
//    first complete round that measured at least two usable regions picks the lowest-latency one once and
//    saves it; noise never switches it afterwards.
//  - Fallback: a region is unusable while the primary says it is unhealthy or while the page's own probe of
//    it failed. The selected region is probed every HEARTBEAT_MS, so a dead proxy is noticed within a few
//    seconds; a failed one is probed at the same pace and used again as soon as it answers. The stored
//    choice is never changed by a fallback. Opening an app, a port or a terminal through the selected region
//    checks it first (check(): its /latency-check within CHECK_TIMEOUT_MS); a failed check counts like a
//    failed probe, so the page falls back at once.
//  - Probeable origins: the page's Content-Security-Policy names the proxies registered when it was served,
//    and the shell repeats that list in <meta name="outpost-connect-src">. When the polled list names an
//    origin outside it, newOrigins() says so and the page reloads itself at a safe moment (app.js).

import { api } from './api.js';

export const SELECTED_KEY = 'user-selected-proxy';
export const LATENCIES_KEY = 'workspace-proxy-latencies';
const MAX_KEY = 'workspace-proxy-latencies-max';
const REUSE_MS = 30_000;
const GC_MS = 7 * 24 * 3600 * 1000;
const HEARTBEAT_MS = 2_000;
const REGIONS_MS = 5_000;
const PROBE_TIMEOUT_MS = 4_000;
const CHECK_TIMEOUT_MS = 3_000;

const state = {
  regions: [],
  latencies: {}, // id -> newest report {accurate, latencyMS, at: Date}
  failed: new Map(), // id -> when the page's own probe failed (until one succeeds)
  probing: new Set(),
  // The origins this page may probe: those the primary put in the page's Content-Security-Policy
  // (connect-src), repeated in the shell's <meta name="outpost-connect-src">. A region registered later is
  // measured after a reload.
  probeable: null,
  selected: null, // the stored Region, or null
  loaded: false,
  error: null,
};
const listeners = new Set();
let started = null;

export function subscribe(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function notify() {
  for (const fn of listeners) {
    try {
      fn();
    } catch (e) {
      console.warn('picker listener failed', e);
    }
  }
}

export function regions() {
  return state.regions;
}
export function loadError() {
  return state.error;
}
export function latency(id) {
  return state.latencies[id] || null;
}
export function probing(id) {
  return state.probing.has(id);
}
export function selected() {
  return state.selected;
}

// Why a listed region cannot be used now ("" when it can).
export function canProbe(r) {
  try {
    return !!state.probeable && state.probeable.has(new URL(r.path_app_url).origin);
  } catch {
    return false;
  }
}

export function unusableReason(r) {
  if (!r.healthy) return 'unhealthy';
  if (state.failed.has(r.id)) return 'not answering';
  return '';
}

function primaryRegion() {
  return state.regions.find((r) => r.name === 'primary') || null;
}

// The region the page uses: {region, fallback, chosen} (fallback: the chosen one is unusable right now).
export function current() {
  const prim = primaryRegion();
  const sel = state.selected && state.regions.find((r) => r.id === state.selected.id);
  if (sel && !unusableReason(sel)) return { region: sel, fallback: false, chosen: sel };
  const fallback = !!state.selected && (!prim || state.selected.id !== prim.id);
  return { region: prim, fallback, chosen: sel || null };
}

// ---- localStorage ----

function validRegion(v) {
  return (
    v && typeof v === 'object' && typeof v.id === 'string' && typeof v.name === 'string' &&
    typeof v.path_app_url === 'string' && typeof v.wildcard_hostname === 'string'
  );
}

function readSelected() {
  try {
    const v = JSON.parse(localStorage.getItem(SELECTED_KEY) || 'null');
    return validRegion(v) ? v : null;
  } catch {
    return null;
  }
}

function maxReports() {
  const n = parseInt(localStorage.getItem(MAX_KEY) || '', 10);
  return n > 0 && n < 100 ? n : 1;
}

// The stored map, garbage-collected: reports older than 7 days and regions no longer listed go.
function readLatencies() {
  let map = {};
  try {
    map = JSON.parse(localStorage.getItem(LATENCIES_KEY) || '{}') || {};
  } catch {
    map = {};
  }
  const now = Date.now();
  const listed = new Set(state.regions.map((r) => r.id));
  const out = {};
  for (const [id, reports] of Object.entries(map)) {
    if (state.regions.length && !listed.has(id)) continue;
    if (!Array.isArray(reports)) continue;
    const kept = reports.filter(
      (x) => x && typeof x.latencyMS === 'number' && now - Date.parse(x.at) < GC_MS,
    );
    if (kept.length) out[id] = kept.slice(-maxReports());
  }
  return out;
}

function storeReport(id, report) {
  const map = readLatencies();
  const list = map[id] || [];
  list.push({ accurate: report.accurate, latencyMS: report.latencyMS, at: report.at.toISOString() });
  map[id] = list.slice(-maxReports());
  localStorage.setItem(LATENCIES_KEY, JSON.stringify(map));
}

function loadStoredLatencies() {
  const map = readLatencies();
  localStorage.setItem(LATENCIES_KEY, JSON.stringify(map));
  for (const [id, reports] of Object.entries(map)) {
    const last = reports[reports.length - 1];
    const mine = state.latencies[id];
    const at = new Date(last.at);
    if (!mine || mine.at < at) state.latencies[id] = { accurate: !!last.accurate, latencyMS: last.latencyMS, at };
  }
}

export function select(region) {
  const keep = {
    id: region.id,
    name: region.name,
    display_name: region.display_name,
    icon_url: region.icon_url,
    healthy: region.healthy,
    path_app_url: region.path_app_url,
    wildcard_hostname: region.wildcard_hostname,
  };
  localStorage.setItem(SELECTED_KEY, JSON.stringify(keep));
  state.selected = keep;
  notify();
  heartbeat();
}

// ---- probes ----

function cacheBust() {
  const abc = 'abcdefghijklmnopqrstuvwxyz0123456789';
  let s = '';
  for (let i = 0; i < 6; i++) s += abc[Math.floor(Math.random() * abc.length)];
  return s;
}

// One round: every region of list probed once, in parallel. Resolves when all have settled.
async function probe(list) {
  list = list.filter((r) => !state.probing.has(r.id) && canProbe(r));
  if (!list.length) return;
  const byUrl = new Map();
  for (const r of list) {
    const u = new URL('/latency-check?cache_bust=' + cacheBust(), r.path_app_url);
    byUrl.set(u.href, r);
    state.probing.add(r.id);
  }
  notify();
  const entries = new Map();
  const take = (es) => {
    for (const e of es) if (byUrl.has(e.name) && !entries.has(e.name)) entries.set(e.name, e);
  };
  const observer = new PerformanceObserver((l) => take(l.getEntries()));
  observer.observe({ type: 'resource' });
  const started = new Map();
  const results = await Promise.allSettled(
    [...byUrl.keys()].map(async (href) => {
      started.set(href, performance.now());
      const res = await fetch(href, {
        headers: { 'X-LATENCY-CHECK': 'true' },
        credentials: 'omit',
        cache: 'no-store',
        signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
      });
      await res.text();
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      return performance.now() - started.get(href);
    }),
  );
  take(performance.getEntriesByType('resource'));
  observer.disconnect();
  performance.clearResourceTimings();
  const now = new Date();
  [...byUrl.entries()].forEach(([href, r], i) => {
    state.probing.delete(r.id);
    const res = results[i];
    if (res.status === 'rejected') {
      state.failed.set(r.id, Date.now());
      return;
    }
    state.failed.delete(r.id);
    const e = entries.get(href);
    let report;
    if (e && e.requestStart > 0 && e.responseStart >= e.requestStart) {
      report = { accurate: true, latencyMS: e.responseStart - e.requestStart, at: now };
    } else {
      report = { accurate: false, latencyMS: e ? e.duration : res.value, at: now };
    }
    state.latencies[r.id] = report;
    storeReport(r.id, report);
  });
  notify();
}

function markFailed(r) {
  state.failed.set(r.id, Date.now());
  notify();
}

// Checks region r now, before something is opened through it: one /latency-check within CHECK_TIMEOUT_MS.
// A failure marks r failed (as a failed probe does: the page falls back to the primary until a probe
// succeeds). Resolves true when r answered (or is not a proxy the page can check), false when it failed.
export async function check(r) {
  if (!r || r.name === 'primary' || !canProbe(r)) return true;
  const u = new URL('/latency-check?cache_bust=' + cacheBust(), r.path_app_url);
  try {
    const res = await fetch(u.href, {
      headers: { 'X-LATENCY-CHECK': 'true' },
      credentials: 'omit',
      cache: 'no-store',
      signal: AbortSignal.timeout(CHECK_TIMEOUT_MS),
    });
    await res.text();
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    return true;
  } catch {
    markFailed(r);
    return false;
  }
}

// A round over the healthy regions whose stored report is older than the reuse window (all of them when
// force), then the one-time auto-selection.
async function round(force) {
  const threshold = force ? Date.now() : Date.now() - REUSE_MS;
  const stale = state.regions.filter((r) => {
    if (!r.healthy) return false;
    const l = state.latencies[r.id];
    return force || !l || l.at.getTime() < threshold;
  });
  await probe(stale);
  autoSelectOnce();
}

export function refresh() {
  return round(true);
}

let autoDone = false;
function autoSelectOnce() {
  if (autoDone || state.selected || !state.regions.length) return;
  const candidates = state.regions.filter((r) => !unusableReason(r) && state.latencies[r.id]);
  if (candidates.length < 2) return; // no choice to make yet (a deployment with the primary only)
  autoDone = true;
  candidates.sort((a, b) => state.latencies[a.id].latencyMS - state.latencies[b.id].latencyMS);
  select(candidates[0]);
}

// The selected region, and every region whose own probe failed, probed again.
function heartbeat() {
  const targets = state.regions.filter(
    (r) => r.healthy && (state.failed.has(r.id) || (state.selected && r.id === state.selected.id)),
  );
  if (targets.length) probe(targets).catch((e) => console.warn('latency probe failed', e));
}

async function loadRegions() {
  try {
    const data = await api('GET', '/api/v2/regions');
    state.regions = Array.isArray(data && data.regions) ? data.regions : [];
    state.error = null;
  } catch (e) {
    state.error = e;
  }
  state.loaded = true;
  notify();
}

// The http(s) origins of the page's connect-src (the shell's <meta name="outpost-connect-src">) and its own.
function cspOrigins() {
  const set = new Set([location.origin]);
  const meta = document.querySelector('meta[name="outpost-connect-src"]');
  for (const w of ((meta && meta.content) || '').split(/\s+/)) {
    if (!/^https?:\/\//.test(w)) continue;
    try {
      set.add(new URL(w).origin);
    } catch {
      // not an origin: not reachable either
    }
  }
  return set;
}

// The origins of listed regions that the page's CSP does not let it reach (sorted; [] when none): a proxy
// registered after the page was served. Only a reload gets a CSP that names them.
export function newOrigins() {
  const out = new Set();
  if (!state.probeable) return [];
  for (const r of state.regions) {
    if (!r.path_app_url) continue;
    try {
      const o = new URL(r.path_app_url).origin;
      if (o !== 'null' && !state.probeable.has(o)) out.add(o);
    } catch {
      // not a URL: never probed
    }
  }
  return [...out].sort();
}

// Loads everything once per page; resolves after the first list (probes go on in the background).
export function start() {
  if (started) return started;
  state.selected = readSelected();
  started = (async () => {
    state.probeable = cspOrigins();
    await loadRegions();
    loadStoredLatencies();
    notify();
    round(false).catch((e) => console.warn('latency round failed', e));
    setInterval(() => {
      loadRegions().then(() => round(false));
    }, REGIONS_MS);
    setInterval(heartbeat, HEARTBEAT_MS);
    window.addEventListener('storage', (ev) => {
      if (ev.key === SELECTED_KEY || ev.key === null) {
        state.selected = readSelected();
        notify();
        heartbeat();
      } else if (ev.key === LATENCIES_KEY) {
        loadStoredLatencies();
        notify();
      }
    });
  })();
  return started;
}

// ---- the URLs a region gives the page ----

// Path apps: under the region's path_app_url without its trailing '/', or relative ("") for the primary.
export function pathBase(r) {
  return !r || r.name === 'primary' ? '' : r.path_app_url.replace(/\/+$/, '');
}

// The region's wildcard host pattern with the access URL's port when it names none.
function wildcard(r) {
  if (!r || !r.wildcard_hostname) return '';
  if (r.wildcard_hostname.includes(':')) return r.wildcard_hostname;
  const u = new URL(r.path_app_url);
  return u.port ? `${r.wildcard_hostname}:${u.port}` : r.wildcard_hostname;
}

// A subdomain app or port URL ("<label>" in the wildcard's '*'), or "" when the region has no wildcard.
export function subdomainURL(r, label) {
  const w = wildcard(r);
  if (!w) return '';
  const scheme = new URL(r.path_app_url).protocol;
  return `${scheme}//${w.replace('*', label)}/`;
}
