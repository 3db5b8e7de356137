// app.js — the dashboard's entry module: the header (navigation, the proxy picker, the signed-in user and
// sign-out) and the page of the current path (the terminal page loads xterm.js, about 340 KB, cached). Every page is the same HTML shell (primary/web.c).

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
  else if (path.endsWith('/terminal')) await renderTerminalPage(main);
  else fill(main, h('h1', {}, 'Not found'));
}

boot().catch((e) => {
  fill(main, h('h1', {}, 'Something went wrong'), h('p', { class: 'error', role: 'alert' }, errorText(e)));
});
