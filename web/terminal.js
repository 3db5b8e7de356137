// terminal.js — the page a workspace's "Terminal" link opens (/@owner/workspace.agent/terminal).
// The browser terminal itself is not in this version of the dashboard: the page says so and names the
// command-line way in.

import { h, fill } from './ui.js';

export function renderTerminalPage(main) {
  const m = /^\/@([^/]+)\/([^/.]+)\.([^/]+)\/terminal$/.exec(location.pathname);
  const [owner, ws, agent] = m ? m.slice(1).map(decodeURIComponent) : ['?', '?', '?'];
  fill(
    main,
    h('h1', {}, `Terminal — ${owner}/${ws}.${agent}`),
    h(
      'div',
      { class: 'card' },
      h('p', {}, 'The browser terminal is not available in this version of the dashboard.'),
      h('p', {}, 'Open a shell from your machine instead: ', h('code', {}, `outpost ssh ${ws}`), '.'),
      h('p', {}, h('a', { href: '/workspaces' }, 'Back to the workspaces')),
    ),
  );
}
