// workspaces.js — the Workspaces page: every visible workspace, its agents and their status, the apps as
// links, a port-forward menu (the agent's listening ports and a free port field) and the terminal link.
// Every link is built for the region the picker says to use (proxy.current()) and rebuilt when it changes;
// the list itself is fetched again every few seconds. Opening an app or a port through a proxy checks the
// proxy first (proxy.check(), in parallel with opening the new tab): when it does not answer, the page
// falls back to the primary at once, says so in the status line and opens the link through the primary.

import { api } from './api.js';
import * as proxy from './proxy.js';
import { h, fill, icon, errorText } from './ui.js';

const REFRESH_MS = 3_000;

function agentsOf(ws) {
  const res = (ws.latest_build && ws.latest_build.resources) || [];
  return res.flatMap((r) => r.agents || []);
}

function statusClass(s) {
  return s === 'connected' ? 'status-ok' : s === 'connecting' ? 'status-warn' : 'status-bad';
}

// The URL of one link for region r (see the data attributes set in agentCard).
function linkURL(r, d) {
  const name = `${d.ws}.${d.agent}`;
  if (d.kind === 'terminal') return `/@${d.owner}/${name}/terminal`;
  if (d.kind === 'path') return `${proxy.pathBase(r)}/@${d.owner}/${name}/apps/${d.slug}/`;
  const label = `${d.kind === 'port' ? d.port : d.slug}--${d.agent}--${d.ws}--${d.owner}`;
  return proxy.subdomainURL(r, label);
}

function updateLinks(root) {
  const r = proxy.current().region;
  for (const a of root.querySelectorAll('a[data-kind]')) {
    const url = r ? linkURL(r, a.dataset) : '';
    if (url) {
      a.href = url;
      a.removeAttribute('aria-disabled');
      a.title = '';
    } else {
      a.removeAttribute('href');
      a.setAttribute('aria-disabled', 'true');
      a.title = 'This region has no wildcard hostname: subdomain apps and ports cannot open through it.';
    }
  }
  const where = root.querySelector('#links-region');
  if (where && r) where.textContent = r.display_name || r.name;
  const status = root.querySelector('#links-status');
  if (status) {
    const cur = proxy.current();
    const text = cur.fallback ? fallbackText(cur) : '';
    if (status.textContent !== text) status.textContent = text;
  }
}

function fallbackText(cur) {
  const name = cur.chosen ? cur.chosen.display_name || cur.chosen.name : 'The selected proxy';
  const why = cur.chosen ? proxy.unusableReason(cur.chosen) : 'not listed';
  return why === 'not answering'
    ? `${name} is not answering; using the primary.`
    : `${name} is ${why || 'not available'}; using the primary.`;
}

// Opens link d (the data attributes of a link) in a new tab through the region in use. Through a proxy the
// tab is opened at once (while the click still counts as a user gesture) and sent to the link after the
// proxy answered its check; when it did not, the check marked it failed, so the link is built again for
// the region in use now (the primary). The tab's opener is cut before it leaves about:blank.
async function openChecked(root, d) {
  const r = proxy.current().region;
  if (!r) return;
  const tab = window.open('', '_blank');
  if (tab) tab.opener = null;
  if (r.name !== 'primary') await proxy.check(r);
  const now = proxy.current().region;
  const url = now ? linkURL(now, d) : '';
  updateLinks(root);
  if (!url) {
    if (tab) tab.close();
    return;
  }
  const href = new URL(url, location.href).href; // the primary's path apps are relative
  if (tab) tab.location.replace(href);
  else window.open(href, '_blank', 'noopener');
}

// Clicks on app and port links: a plain click goes through openChecked(); a click that opens the link in
// some other way (a modifier key, the middle button) is left to the browser, with the proxy checked anyway
// so that the page notices a dead one.
function onLinkClick(root, ev) {
  const a = ev.target instanceof Element ? ev.target.closest('a[data-kind]') : null;
  if (!a || a.dataset.kind === 'terminal' || !a.hasAttribute('href')) return;
  const r = proxy.current().region;
  if (!r || r.name === 'primary') return;
  if (ev.button !== 0 || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.altKey) {
    proxy.check(r);
    return;
  }
  ev.preventDefault();
  openChecked(root, { ...a.dataset });
}

function portMenu(root, ws, agent) {
  const base = { owner: ws.owner_name, ws: ws.name, agent: agent.name };
  const ports = (agent.listening_ports || []).filter((p) => p.port >= 9);
  const input = h('input', {
    type: 'number', min: 9, max: 65535, id: `port-${agent.id}`, placeholder: '8080', 'aria-label': 'Port number',
  });
  const open = (ev) => {
    ev.preventDefault();
    const n = parseInt(input.value, 10);
    if (!(n >= 9 && n <= 65535)) return;
    openChecked(root, { ...base, kind: 'port', port: String(n) });
  };
  return h(
    'details',
    { class: 'menu left', dataset: { portsFor: agent.name } },
    h('summary', {}, 'Ports'),
    h(
      'div',
      { class: 'panel' },
      ports.length
        ? h(
            'ul',
            { class: 'plain' },
            ports.map((p) =>
              h(
                'li',
                {},
                h('a', { dataset: { ...base, kind: 'port', port: String(p.port) }, target: '_blank', rel: 'noopener' },
                  String(p.port)),
                p.process_name ? h('span', { class: 'muted' }, ` ${p.process_name}`) : '',
              ),
            ),
          )
        : h('p', { class: 'muted' }, 'No listening ports reported.'),
      h(
        'form',
        { class: 'row', onsubmit: open },
        h('label', { for: `port-${agent.id}`, class: 'sr-only' }, 'Port'),
        input,
        h('button', { type: 'submit' }, 'Open'),
      ),
    ),
  );
}

function agentCard(root, ws, agent) {
  const base = { owner: ws.owner_name, ws: ws.name, agent: agent.name };
  const apps = (agent.apps || []).map((app) =>
    h(
      'a',
      {
        class: 'button app',
        target: '_blank',
        rel: 'noopener',
        dataset: { ...base, kind: app.subdomain ? 'subdomain' : 'path', slug: app.slug, app: app.slug },
      },
      icon(app.icon), app.display_name || app.slug,
    ),
  );
  return h(
    'div',
    { class: 'agent', dataset: { agent: agent.name } },
    h(
      'div',
      { class: 'row' },
      h('strong', {}, agent.name),
      h('span', { class: `badge ${statusClass(agent.status)}`, dataset: { agentStatus: agent.status } }, agent.status),
      agent.health && agent.health.reason ? h('span', { class: 'muted' }, agent.health.reason) : '',
    ),
    h(
      'div',
      { class: 'apps' },
      apps,
      h('a', { class: 'button', dataset: { ...base, kind: 'terminal' } }, 'Terminal'),
      portMenu(root, ws, agent),
    ),
  );
}

function workspaceCard(root, ws) {
  const agents = agentsOf(ws);
  return h(
    'section',
    { class: 'card', dataset: { workspace: `${ws.owner_name}/${ws.name}` } },
    h('h2', {}, `${ws.owner_name}/${ws.name}`),
    agents.length ? agents.map((a) => agentCard(root, ws, a)) : h('p', { class: 'muted' }, 'No agents.'),
  );
}

// What decides whether the list must be built again (anything else is updated in place).
function shape(list) {
  return JSON.stringify(
    list.map((ws) => [ws.id, ws.name, agentsOf(ws).map((a) => [a.id, a.name, a.status, a.apps, a.listening_ports])]),
  );
}

export function renderWorkspacesPage(main) {
  const list = h('div', { id: 'workspaces' });
  const error = h('p', { class: 'error', role: 'alert' });
  fill(
    main,
    h('h1', {}, 'Workspaces'),
    h('p', { class: 'muted' }, 'Apps and ports open through ', h('strong', { id: 'links-region' }, '…'), '.'),
    h('p', { class: 'note', id: 'links-status', role: 'status' }),
    error,
    list,
  );
  let last = '';
  const load = async () => {
    try {
      const data = await api('GET', '/api/v2/workspaces');
      const wss = (data && data.workspaces) || [];
      const s = shape(wss);
      error.textContent = '';
      if (s !== last) {
        const open = new Set([...list.querySelectorAll('details[open]')].map((d) => d.dataset.portsFor));
        last = s;
        fill(
          list,
          wss.length
            ? wss.map((ws) => workspaceCard(main, ws))
            : h('p', { class: 'muted' }, 'No workspaces yet. Create one with ', h('code', {}, 'outpost create NAME'), '.'),
        );
        for (const d of list.querySelectorAll('details[data-ports-for]')) if (open.has(d.dataset.portsFor)) d.open = true;
      }
      updateLinks(main);
    } catch (e) {
      error.textContent = errorText(e);
    }
  };
  list.addEventListener('click', (ev) => onLinkClick(main, ev));
  proxy.subscribe(() => updateLinks(main));
  load();
  setInterval(load, REFRESH_MS);
}
