// terminal.js — the web terminal (/@owner/workspace.agent/terminal): xterm.js on a WebSocket to
// /api/v2/workspaceagents/<agent>/pty in the region the picker says to use. On the primary the session
// cookie authorizes it; through a proxy, a signed token from POST
// /api/v2/applications/reconnecting-pty-signed-token rides in the coder_signed_app_token_23db1dde query
// parameter. The session's UUID (?reconnect=) is kept per tab, so a reload, a dropped connection or a
// change of region reattaches to the same shell (its scrollback is replayed). Keystrokes and sizes go as
// JSON messages ({"data"}, {"width","height"}); the output comes back as binary messages (docs/terminal.md).
// ?command=<cmd> in the page's URL runs that command (/bin/sh -c) instead of a login shell: it is passed on
// as the socket's `command` parameter (so it is inside the URL the signed token is asked for) and has a
// session of its own. A socket to a proxy that does not open (refused, or not open within OPEN_CHECK_MS)
// or that drops makes the page check the proxy (proxy.check()): a dead one is marked failed, so the page
// falls back to the primary and reattaches the session there.

import { Terminal } from './xterm.mjs';
import { FitAddon } from './addon-fit.mjs';
import { api } from './api.js';
import * as proxy from './proxy.js';
import { h, fill, errorText } from './ui.js';

const TOKEN_PARAM = 'coder_signed_app_token_23db1dde';
const OPEN_CHECK_MS = 2_000;

function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((v) => v.toString(16).padStart(2, '0')).join('');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

// The agent named by the page's path, from the workspace's JSON.
async function findAgent(owner, wsName, agentName) {
  const ws = await api('GET', `/api/v2/users/${encodeURIComponent(owner)}/workspace/${encodeURIComponent(wsName)}`);
  const agents = ((ws.latest_build && ws.latest_build.resources) || []).flatMap((r) => r.agents || []);
  const a = agents.find((x) => x.name === agentName);
  if (!a) throw new Error(`workspace ${owner}/${wsName} has no agent ${agentName}`);
  return a;
}

export async function renderTerminalPage(main) {
  const m = /^\/@([^/]+)\/([^/.]+)\.([^/]+)\/terminal$/.exec(location.pathname);
  if (!m) throw new Error('not a terminal address');
  const [owner, wsName, agentName] = m.slice(1).map(decodeURIComponent);
  const status = h('p', { class: 'muted', id: 'terminal-status', 'aria-live': 'polite' }, 'Connecting…');
  const box = h('div', { id: 'terminal', class: 'terminal' });
  main.classList.add('wide');
  const title = `Terminal — ${owner}/${wsName}.${agentName}`;
  const cmdParam = new URLSearchParams(location.search).get('command');
  fill(main, h('h1', {}, title), cmdParam ? h('p', { class: 'muted' }, 'Command: ', h('code', {}, cmdParam)) : null, status, box);
  const agent = await findAgent(owner, wsName, agentName);

  const term = new Terminal({ cursorBlink: true, fontSize: 14, scrollback: 5000 });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(box);
  fit.fit();
  term.focus();

  const command = new URLSearchParams(location.search).get('command') || '';
  const key = `outpost-terminal-session-${agent.id}${command ? `-${command}` : ''}`;
  const session = sessionStorage.getItem(key) || uuid();
  sessionStorage.setItem(key, session);

  let sock = null;
  let regionId = null;
  let attempts = 0;
  let exited = false;
  let timer = null;
  const send = (msg) => {
    if (sock && sock.readyState === WebSocket.OPEN) sock.send(JSON.stringify(msg));
  };
  const schedule = () => {
    clearTimeout(timer);
    const wait = Math.min(10_000, 500 * 2 ** Math.min(attempts, 5));
    attempts++;
    timer = setTimeout(connect, wait);
  };

  async function connect() {
    clearTimeout(timer);
    const r = proxy.current().region;
    if (!r) {
      schedule();
      return;
    }
    regionId = r.id;
    const base = r.name === 'primary' ? location.origin : r.path_app_url.replace(/\/+$/, '');
    const u = new URL(`/api/v2/workspaceagents/${agent.id}/pty`, base);
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    u.searchParams.set('reconnect', session);
    u.searchParams.set('width', String(term.cols));
    u.searchParams.set('height', String(term.rows));
    if (command) u.searchParams.set('command', command);
    try {
      if (r.name !== 'primary') {
        const res = await api('POST', '/api/v2/applications/reconnecting-pty-signed-token', { url: u.href, agentID: agent.id });
        u.searchParams.set(TOKEN_PARAM, res.signed_token);
      }
    } catch (e) {
      status.textContent = `Cannot open a terminal through ${r.display_name || r.name}: ${errorText(e)}. Retrying…`;
      schedule();
      return;
    }
    const s = new WebSocket(u.href);
    s.binaryType = 'arraybuffer';
    sock = s;
    let opened = false;
    const checkRegion = () => {
      if (r.name !== 'primary') proxy.check(r);
    };
    const openTimer = setTimeout(() => {
      if (sock === s && !opened) checkRegion();
    }, OPEN_CHECK_MS);
    s.onopen = () => {
      opened = true;
      clearTimeout(openTimer);
      if (sock !== s) return;
      attempts = 0;
      term.reset(); // the agent replays the session's scrollback to every socket that attaches
      status.textContent = `Connected through ${r.display_name || r.name}.`;
      status.dataset.region = r.name;
      status.dataset.state = 'connected';
    };
    s.onmessage = (ev) => {
      if (sock !== s) return;
      term.write(typeof ev.data === 'string' ? ev.data : new Uint8Array(ev.data));
    };
    s.onclose = (ev) => {
      clearTimeout(openTimer);
      if (sock !== s) return;
      sock = null;
      status.dataset.state = 'closed';
      if (ev.code === 1000 && /process (exited|killed)/.test(ev.reason)) {
        exited = true;
        status.textContent = `The ${command ? 'command' : 'shell'} ended (${ev.reason}). Reload the page for a new one.`;
        status.dataset.state = 'exited';
        sessionStorage.removeItem(key);
        return;
      }
      status.textContent = `Disconnected${ev.reason ? ` (${ev.reason})` : ''}: reconnecting to the same session…`;
      schedule();
      checkRegion();
    };
  }

  term.onData((data) => send({ data }));
  term.onResize(({ cols, rows }) => send({ width: cols, height: rows }));
  window.addEventListener('resize', () => fit.fit());
  // Another region chosen (or a fallback): the same session, reattached through it.
  proxy.subscribe(() => {
    const r = proxy.current().region;
    if (exited || !r || r.id === regionId) return;
    const old = sock;
    sock = null;
    if (old) old.close(1000, 'switching region');
    connect();
  });
  connect();
}
