// picker.js — the workspace-proxy picker as the user sees it: the menu at the top right of every page and
// the Account → Workspace Proxy page (both views of the model in proxy.js).

import * as proxy from './proxy.js';
import { h, fill, keyed, icon, formatLatency } from './ui.js';

function statusText(r) {
  const why = proxy.unusableReason(r);
  return why ? why : 'healthy';
}

function latencyCell(r) {
  if (!proxy.latency(r.id) && !proxy.canProbe(r)) return 'reload to measure';
  if (proxy.probing(r.id) && !proxy.latency(r.id)) return 'measuring…';
  return formatLatency(proxy.latency(r.id));
}

// The header menu. Parts are rebuilt only when what they show changes (see keyed()).
export function mountMenu(slot) {
  const menu = h('details', { class: 'menu', id: 'picker-menu' });
  const summary = h('summary', { id: 'picker-current' });
  const note = h('div');
  const items = h('div');
  const panel = h(
    'div',
    { class: 'panel', role: 'group', 'aria-label': 'Workspace proxies' },
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
  const render = () => {
    const cur = proxy.current();
    const r = cur.region;
    summary.dataset.region = r ? r.name : '';
    const lat = r ? formatLatency(proxy.latency(r.id)) : '';
    keyed(summary, JSON.stringify([r && r.id, r && r.display_name, r && r.icon_url, lat]), () =>
      r
        ? [h('span', { class: 'sr-only' }, 'Workspace proxy: '), icon(r.icon_url), r.display_name || r.name,
            h('span', { class: 'latency' }, ' ', lat)]
        : 'Workspace proxy',
    );
    const chosen = cur.chosen ? cur.chosen.display_name || cur.chosen.name : 'The selected proxy';
    keyed(note, String(cur.fallback) + chosen, () =>
      cur.fallback
        ? h('p', { class: 'note', id: 'picker-fallback' }, `${chosen} is not available: using the primary until it is back.`)
        : null,
    );
    const list = proxy.regions();
    keyed(items, JSON.stringify(list.map((x) => [x.id, x.name, x.display_name, x.icon_url])), () =>
      list.map((x) =>
        h(
          'button',
          {
            type: 'button',
            class: 'region',
            dataset: { region: x.name },
            onclick: () => {
              proxy.select(x);
              menu.open = false;
            },
          },
          h('span', {}, icon(x.icon_url), x.display_name || x.name, h('span', { class: 'why' })),
          h('span', { class: 'latency', dataset: { latencyFor: x.name } }),
        ),
      ),
    );
    for (const x of list) {
      const b = items.querySelector(`button[data-region="${CSS.escape(x.name)}"]`);
      if (!b) continue;
      const why = proxy.unusableReason(x);
      const checked = cur.chosen ? cur.chosen.id === x.id : !!cur.region && cur.region.id === x.id;
      b.setAttribute('aria-pressed', checked ? 'true' : 'false');
      b.disabled = !!why;
      setText(b.querySelector('.why'), why ? ` (${why})` : '');
      setText(b.querySelector('.latency'), latencyCell(x));
    }
  };
  proxy.subscribe(render);
  render();
  fill(slot, menu);
}

function setText(el, text) {
  if (el && el.textContent !== text) el.textContent = text;
}

// Account → Workspace Proxy.
export function renderAccountPage(main) {
  const table = h('tbody');
  const note = h('div');
  const render = () => {
    const cur = proxy.current();
    const chosenName = cur.chosen ? cur.chosen.display_name || cur.chosen.name : 'Your selected proxy';
    const err = proxy.loadError() ? String(proxy.loadError().message) : '';
    keyed(note, JSON.stringify([cur.fallback, chosenName, err]), () => [
      cur.fallback
        ? h('p', { class: 'note' },
            `${chosenName} is not available right now: links use the primary until it is back (your choice is kept).`)
        : null,
      err ? h('p', { class: 'error' }, err) : null,
    ]);
    const list = proxy.regions();
    keyed(table, JSON.stringify(list.map((r) => [r.id, r.name, r.display_name, r.icon_url, r.path_app_url])), () =>
      list.map((r) =>
        h(
          'tr',
          { dataset: { region: r.name } },
          h('td', {}, icon(r.icon_url), h('strong', {}, r.display_name || r.name), ' ', h('span', { class: 'muted' }, r.name)),
          h('td', {}, h('code', {}, r.path_app_url)),
          h('td', { class: 'status' }),
          h('td', { class: 'latency', dataset: { latencyFor: r.name } }),
          h('td', { class: 'action' }),
        ),
      ),
    );
    for (const r of list) {
      const tr = table.querySelector(`tr[data-region="${CSS.escape(r.name)}"]`);
      if (!tr) continue;
      const chosen = cur.chosen ? cur.chosen.id === r.id : !!cur.region && cur.region.id === r.id;
      const why = proxy.unusableReason(r);
      tr.setAttribute('aria-selected', chosen ? 'true' : 'false');
      const st = tr.querySelector('.status');
      st.className = `status ${why ? 'unhealthy' : 'healthy'}`;
      setText(st, statusText(r));
      setText(tr.querySelector('.latency'), latencyCell(r));
      keyed(tr.querySelector('.action'), JSON.stringify([chosen, !!why]), () =>
        chosen
          ? h('span', { class: 'badge', dataset: { selected: r.name } }, 'Selected')
          : h('button', { type: 'button', disabled: !!why, dataset: { select: r.name }, onclick: () => proxy.select(r) }, 'Select'),
      );
    }
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
