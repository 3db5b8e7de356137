// app.js — the dashboard's entry module: the header (navigation, the proxy picker, the signed-in user and
// sign-out) and the page of the current path (the terminal page loads xterm.js, about 340 KB, cached). Every
// page is the same HTML shell (primary/web.c).
//
// A proxy registered after the page was served is outside the page's CSP (proxy.newOrigins()): the page
// reloads itself for a CSP that names it, at a safe moment: not on a terminal page (a notice says to reload
// there), not while a form field has the focus or holds typed text, not while a new proxy's token is shown.
// It reloads once per set of new origins (sessionStorage), so a region the primary's CSP never names cannot
// make it reload again and again.

import { api, logout } from './api.js';
import * as proxy from './proxy.js';
import { mountMenu, renderAccountPage } from './picker.js';
import { renderWorkspacesPage } from './workspaces.js';
import { renderDeploymentPage } from './deployment.js';
import { renderSetupPage } from './setup.js';
import { renderTerminalPage } from './terminal.js';
import { fill, h, errorText } from './ui.js';

const main = document.getElementById('main');

function markNav(path) {
  for (const a of document.querySelectorAll('header nav a')) {
    if (a.dataset.nav === path || (path === '/' && a.dataset.nav === '/workspaces')) a.setAttribute('aria-current', 'page');
  }
}

async function signOut() {
  await logout();
  location.assign('/login');
}

const RELOADED_KEY = 'outpost-reloaded-for';

function typing() {
  const a = document.activeElement;
  if (a && a.matches('input, textarea, select, [contenteditable]')) return true;
  return [...document.querySelectorAll('main input:not([type=hidden]), main textarea')].some(
    (i) => i.value !== i.defaultValue,
  );
}

function watchNewOrigins(terminal) {
  let notice = null;
  const look = () => {
    const fresh = proxy.newOrigins();
    if (!fresh.length) return;
    const key = fresh.join(' ');
    if (sessionStorage.getItem(RELOADED_KEY) === key) return; // reloaded for these already
    if (terminal) {
      if (!notice || !notice.isConnected) {
        notice = h('p', { class: 'note', id: 'reload-notice', role: 'status' },
          'A workspace proxy was added after this page loaded: reload the page to measure and use it.');
        main.prepend(notice);
      }
      return;
    }
    if (typing() || document.querySelector('#proxy-token')) return;
    sessionStorage.setItem(RELOADED_KEY, key);
    location.reload();
  };
  proxy.subscribe(look);
  look();
}

async function boot() {
  const path = location.pathname.replace(/\/+$/, '') || '/';
  if (path === '/setup') {
    renderSetupPage(main);
    return;
  }
  const me = await api('GET', '/api/v2/users/me');
  fill(document.getElementById('me'), me.username);
  const signout = document.getElementById('signout');
  signout.hidden = false;
  signout.addEventListener('click', signOut);
  const owner = (me.roles || []).some((r) => r.name === 'owner');
  document.getElementById('nav-deployment').hidden = !owner;
  markNav(path);
  mountMenu(document.getElementById('picker'));
  await proxy.start();
  const titles = {
    '/': 'Workspaces',
    '/workspaces': 'Workspaces',
    '/account/workspace-proxy': 'Workspace Proxy',
    '/deployment/workspace-proxies': 'Workspace Proxies',
  };
  document.title = `${titles[path] || 'Terminal'} — Outpost`;
  if (path === '/' || path === '/workspaces') renderWorkspacesPage(main);
  else if (path === '/account/workspace-proxy') renderAccountPage(main);
  else if (path === '/deployment/workspace-proxies') renderDeploymentPage(main, me);
  else if (path.endsWith('/terminal')) {
    await renderTerminalPage(main);
    watchNewOrigins(true);
    return;
  } else fill(main, h('h1', {}, 'Not found'));
  watchNewOrigins(false);
}

boot().catch((e) => {
  fill(main, h('h1', {}, 'Something went wrong'), h('p', { class: 'error', role: 'alert' }, errorText(e)));
});
