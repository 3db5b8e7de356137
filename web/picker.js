// picker.js — the workspace-proxy picker as the user sees it: the menu at the top right of every page and
// the Account → Workspace Proxy page (both views of the model in proxy.js).

import * as proxy from './proxy.js';
import { h, fill, icon, formatLatency } from './ui.js';

function statusText(r) {
  const why = proxy.unusableReason(r);
  return why ? why : 'healthy';
}

function latencyCell(r) {
  if (!proxy.latency(r.id) && !proxy.canProbe(r)) return 'reload to measure';
  if (proxy.probing(r.id) && !proxy.latency(r.id)) return 'measuring…';
  return formatLatency(proxy.latency(r.id));
}

// The header menu.
export function mountMenu(slot) {
  const menu = h('details', { class: 'menu', id: 'picker-menu' });
  const render = () => {
    const cur = proxy.current();
    const open = menu.open;
    const r = cur.region;
    const summary = h(
      'summary',
      { 'aria-label': 'Workspace proxy', id: 'picker-current', dataset: { region: r ? r.name : '' } },
      r ? [icon(r.icon_url), r.display_name || r.name] : 'Workspace proxy',
      r ? h('span', { class: 'latency' }, ' ', formatLatency(proxy.latency(r.id))) : null,
    );
    const items = proxy.regions().map((x) => {
      const why = proxy.unusableReason(x);
      const chosen = cur.chosen && cur.chosen.id === x.id;
      return h(
        'button',
        {
          type: 'button',
          class: 'region',
          role: 'menuitemradio',
          'aria-checked': chosen || (!cur.chosen && cur.region && cur.region.id === x.id) ? 'true' : 'false',
          disabled: !!why,
          dataset: { region: x.name },
          onclick: () => {
            proxy.select(x);
            menu.open = false;
          },
        },
        h('span', {}, icon(x.icon_url), x.display_name || x.name, why ? ` (${why})` : ''),
        h('span', { class: 'latency', dataset: { latencyFor: x.name } }, latencyCell(x)),
      );
    });
    const note = cur.fallback
      ? h('p', { class: 'note', id: 'picker-fallback' },
          `${cur.chosen ? cur.chosen.display_name || cur.chosen.name : 'The selected proxy'} is not available: using the primary until it is back.`)
      : null;
    const panel = h(
      'div',
      { class: 'panel', role: 'menu', 'aria-label': 'Workspace proxies' },
      note,
      items,
      h(
        'div',
        { class: 'foot' },
        h('a', { href: '/account/workspace-proxy' }, 'Proxy settings'),
        h('button', { type: 'button', class: 'quiet', onclick: () => proxy.refresh() }, 'Refresh latencies'),
      ),
    );
    fill(menu, summary, panel);
    menu.open = open;
  };
  proxy.subscribe(render);
  render();
  fill(slot, menu);
}

// Account → Workspace Proxy.
export function renderAccountPage(main) {
  const table = h('tbody');
  const note = h('div');
  const render = () => {
    const cur = proxy.current();
    fill(
      note,
      cur.fallback
        ? h('p', { class: 'note' },
            `${cur.chosen ? cur.chosen.display_name || cur.chosen.name : 'Your selected proxy'} is not available right now: links use the primary until it is back (your choice is kept).`)
        : null,
      proxy.loadError() ? h('p', { class: 'error' }, String(proxy.loadError().message)) : null,
    );
    fill(
      table,
      proxy.regions().map((r) => {
        const chosen = cur.chosen ? cur.chosen.id === r.id : cur.region && cur.region.id === r.id;
        const why = proxy.unusableReason(r);
        return h(
          'tr',
          { dataset: { region: r.name }, 'aria-selected': chosen ? 'true' : 'false' },
          h('td', {}, icon(r.icon_url), h('strong', {}, r.display_name || r.name), ' ', h('span', { class: 'muted' }, r.name)),
          h('td', {}, h('code', {}, r.path_app_url)),
          h('td', { class: why ? 'unhealthy' : 'healthy' }, statusText(r)),
          h('td', { class: 'latency', dataset: { latencyFor: r.name } }, latencyCell(r)),
          h(
            'td',
            {},
            chosen
              ? h('span', { class: 'badge', dataset: { selected: r.name } }, 'Selected')
              : h('button', { type: 'button', disabled: !!why, dataset: { select: r.name }, onclick: () => proxy.select(r) }, 'Select'),
          ),
        );
      }),
    );
  };
  fill(
    main,
    h('h1', {}, 'Workspace Proxy'),
    h(
      'p',
      { class: 'muted' },
      'Apps, ports and terminals open through the region you select. The latencies are measured from this browser.',
    ),
    note,
    h(
      'div',
      { class: 'card' },
      h(
        'table',
        { id: 'regions' },
        h('thead', {}, h('tr', {}, ['Region', 'URL', 'Status', 'Latency', ''].map((t) => h('th', { scope: 'col' }, t)))),
        table,
      ),
      h('p', {}, h('button', { type: 'button', id: 'refresh-latencies', onclick: () => proxy.refresh() }, 'Refresh latencies')),
    ),
  );
  proxy.subscribe(render);
  render();
}
