// setup.js — the first-owner setup of a new deployment: POST /api/v2/users/first, then sign in with the
// same credentials (POST /api/v2/users/login sets the session cookie) and on to the workspaces.

import { api } from './api.js';
import { h, fill, errorText } from './ui.js';

export function renderSetupPage(main) {
  document.body.className = 'narrow';
  document.querySelector('header.top').hidden = true;
  main.className = 'card';
  const error = h('p', { role: 'alert' });
  const input = (id, label, attrs) => [h('label', { for: id }, label), h('input', { id, name: id, required: true, ...attrs })];
  const form = h(
    'form',
    { id: 'setup' },
    input('username', 'Username', { autocomplete: 'username', pattern: '[a-zA-Z0-9]+(-[a-zA-Z0-9]+)*', maxlength: 32 }),
    input('email', 'Email', { type: 'email', autocomplete: 'email' }),
    input('password', 'Password', { type: 'password', autocomplete: 'new-password', minlength: 6 }),
    h('button', { type: 'submit' }, 'Create the owner account'),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const v = (id) => form.querySelector('#' + id).value;
    const button = form.querySelector('button');
    button.disabled = true;
    try {
      await api('POST', '/api/v2/users/first', { username: v('username'), email: v('email'), password: v('password') });
      await api('POST', '/api/v2/users/login', { email: v('email'), password: v('password') });
      location.assign('/workspaces');
    } catch (e) {
      error.textContent = errorText(e);
      button.disabled = false;
    }
  });
  fill(
    main,
    h('h1', {}, 'Welcome to Outpost'),
    h('p', { class: 'muted' }, 'This deployment is new. Create its first user: an owner, who can manage workspace proxies and users.'),
    error,
    form,
  );
}
