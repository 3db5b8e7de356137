// deployment.js — Deployment → Workspace Proxies (owners): every region with its status and the errors AND
// warnings of its last health check, and create (the token shown once), edit, delete, regenerate token.

import { api } from './api.js';
import { h, fill, keyed, icon, errorText } from './ui.js';

function statusClass(s) {
  return s === 'ok' ? 'status-ok' : s === 'unregistered' || s === 'unknown' ? 'status-warn' : 'status-bad';
}

function tokenBox(title, token) {
  const code = h('code', { class: 'token', id: 'proxy-token' }, token);
  const copied = h('span', { class: 'muted', 'aria-live': 'polite' });
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(token);
      copied.textContent = ' Copied.';
    } catch {
      const sel = getSelection();
      sel.selectAllChildren(code);
      copied.textContent = ' Select the token and copy it.';
    }
  };
  return h(
    'div',
    { class: 'card', id: 'token-box' },
    h('h2', {}, title),
    h('p', {}, 'This token is shown once. Start the proxy with it in ', h('code', {}, 'CODER_PROXY_SESSION_TOKEN'), ':'),
    code,
    h(
      'code',
      { class: 'token' },
      `CODER_PROXY_SESSION_TOKEN=… outpost wsproxy server --primary-access-url ${location.origin} --http-address 127.0.0.1:3001`,
    ),
    h('button', { type: 'button', onclick: copy }, 'Copy token'),
    copied,
  );
}

function field(id, label, attrs = {}) {
  return [h('label', { for: id }, label), h('input', { id, name: id, ...attrs })];
}

export function renderDeploymentPage(main, me) {
  if (!me.roles || !me.roles.some((r) => r.name === 'owner')) {
    fill(main, h('h1', {}, 'Workspace Proxies'), h('p', {}, 'Only owners manage workspace proxies.'));
    return;
  }
  const shown = h('div');
  const error = h('p', { class: 'error', role: 'alert' });
  const body = h('tbody');
  const form = h(
    'form',
    { class: 'card', id: 'create-proxy' },
    h('h2', {}, 'Create a workspace proxy'),
    field('proxy-name', 'Name', { required: true, pattern: '[a-zA-Z0-9]+(-[a-zA-Z0-9]+)*', maxlength: 32 }),
    field('proxy-display-name', 'Display name'),
    field('proxy-icon', 'Icon URL', { placeholder: '/emojis/1f30d.png' }),
    h('button', { type: 'submit' }, 'Create'),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const res = await api('POST', '/api/v2/workspaceproxies', {
        name: form.querySelector('#proxy-name').value,
        display_name: form.querySelector('#proxy-display-name').value,
        icon: form.querySelector('#proxy-icon').value,
      });
      form.reset();
      fill(shown, tokenBox(`Workspace proxy ${res.proxy.name} created`, res.proxy_token));
      error.textContent = '';
      load();
    } catch (e) {
      error.textContent = errorText(e);
    }
  });

  const act = async (fn) => {
    try {
      await fn();
      error.textContent = '';
    } catch (e) {
      error.textContent = errorText(e);
    }
    load();
  };

  const editRow = (p, tr) => {
    const name = h('input', { value: p.name, 'aria-label': 'Name', required: true });
    const dn = h('input', { value: p.display_name, 'aria-label': 'Display name' });
    const ic = h('input', { value: p.icon_url, 'aria-label': 'Icon URL' });
    const save = h('form', {
      class: 'row',
      onsubmit: (ev) => {
        ev.preventDefault();
        fill(tr); // the row is rebuilt by the reload that follows
        delete body.dataset.renderKey;
        act(() => api('PATCH', `/api/v2/workspaceproxies/${p.id}`, { name: name.value, display_name: dn.value, icon: ic.value }));
      },
    }, name, dn, ic, h('button', { type: 'submit' }, 'Save'), h('button', { type: 'button', class: 'quiet', onclick: () => { fill(tr); delete body.dataset.renderKey; load(); } }, 'Cancel'));
    fill(tr, h('td', { colspan: 6 }, save));
  };

  const row = (p) => {
    const st = (p.status && p.status.status) || 'unknown';
    const rep = (p.status && p.status.report) || {};
    const errors = rep.errors || [], warnings = rep.warnings || [];
    const primary = p.name === 'primary';
    const tr = h('tr', { dataset: { proxy: p.name } });
    fill(
      tr,
      h('td', {}, icon(p.icon_url), h('strong', {}, p.display_name || p.name), h('div', { class: 'muted' }, p.name)),
      h('td', {}, p.path_app_url ? h('code', {}, p.path_app_url) : h('span', { class: 'muted' }, 'not registered'),
        p.wildcard_hostname ? h('div', { class: 'muted' }, p.wildcard_hostname) : ''),
      h('td', { class: statusClass(st), dataset: { status: st } }, st),
      h(
        'td',
        {},
        errors.map((e) => h('div', { class: 'status-bad', dataset: { healthError: '' } }, 'Error: ', e)),
        warnings.map((w) => h('div', { class: 'status-warn', dataset: { healthWarning: '' } }, 'Warning: ', w)),
        !errors.length && !warnings.length ? h('span', { class: 'muted' }, '—') : '',
      ),
      h('td', {}, p.version || ''),
      h(
        'td',
        {},
        primary
          ? ''
          : h(
              'div',
              { class: 'row actions' },
              h('button', { type: 'button', class: 'quiet', onclick: () => editRow(p, tr) }, 'Edit'),
              h('button', {
                type: 'button',
                class: 'quiet',
                onclick: () =>
                  act(async () => {
                    const res = await api('PATCH', `/api/v2/workspaceproxies/${p.id}`, { regenerate_token: true });
                    fill(shown, tokenBox(`New token for ${p.name}`, res.proxy_token));
                  }),
              }, 'Regenerate token'),
              h('button', {
                type: 'button',
                class: 'danger',
                onclick: () => {
                  if (confirm(`Delete workspace proxy ${p.name}? Its token stops working at once.`))
                    act(() => api('DELETE', `/api/v2/workspaceproxies/${p.id}`));
                },
              }, 'Delete'),
            ),
      ),
    );
    return tr;
  };

  let editing = () => body.querySelector('form');
  const load = async () => {
    try {
      const data = await api('GET', '/api/v2/workspaceproxies');
      if (editing()) return; // never throw away a half-edited row
      const list = (data && data.regions) || [];
      // Rebuilt only when something shown changed (not for every health check's checked_at).
      const key = JSON.stringify(list.map((p) => [p.id, p.name, p.display_name, p.icon_url, p.path_app_url,
        p.wildcard_hostname, p.version, p.status && p.status.status, p.status && p.status.report]));
      keyed(body, key, () => list.map(row));
    } catch (e) {
      error.textContent = errorText(e);
    }
  };

  fill(
    main,
    h('h1', {}, 'Workspace Proxies'),
    error,
    shown,
    h(
      'div',
      { class: 'card' },
      h(
        'table',
        { id: 'proxies' },
        h('thead', {}, h('tr', {}, ['Proxy', 'URL', 'Status', 'Health report', 'Version', ''].map((t) => h('th', { scope: 'col' }, t)))),
        body,
      ),
    ),
    form,
  );
  load();
  setInterval(load, 5000);
}
