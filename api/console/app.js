// allocation-relay operator console (docs/console.md). Plain script, no build step, no
// framework. Runs under the console's Content-Security-Policy: no inline script or style, no
// eval; every value from the server goes into the page as text (textContent, createElement),
// never as HTML. Chart.js (Debian's libjs-chart.js, global `Chart`) draws the two charts.
'use strict';

(() => {
  const KEY_STORAGE = 'allocation-relay.console.key';
  const REFRESH_MS = 5000;

  const state = {
    key: null,
    session: null,        // {key, actions, warehouses}
    warehouses: null,     // [{id, name}] from the latest overview answer
    routeSeq: 0,          // bumped on every navigation; stale answers are dropped
    timer: null,          // the overview's refresh timer
    refreshing: false,
    charts: null,         // {delivered, failures}: Chart objects while the overview is shown
    busy: false,          // an action is running
  };

  const $ = (id) => document.getElementById(id);

  // ---- DOM helpers -------------------------------------------------------------------------

  // el('td', {className: 'n', title: 'x', dataset: {testid: 'a'}}, child, 'text', ...)
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [name, value] of Object.entries(props)) {
        if (value === undefined || value === null || value === false) continue;
        if (name === 'dataset') {
          for (const [k, v] of Object.entries(value)) if (v !== undefined && v !== null) node.dataset[k] = String(v);
        }
        else if (name === 'text') node.textContent = String(value);
        else if (name === 'on') {
          for (const [type, handler] of Object.entries(value)) node.addEventListener(type, handler);
        } else if (name in node && typeof node[name] !== 'function' && name !== 'list') {
          node[name] = value;
        } else node.setAttribute(name, value === true ? '' : String(value));
      }
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.firstChild.remove();
  }

  // A time from the server (ISO, UTC): local time shown, the ISO value in the title.
  function timeEl(iso) {
    if (!iso) return el('span', {className: 'muted', text: '—'});
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return el('span', {text: iso});
    return el('time', {dateTime: iso, title: iso, text: d.toLocaleString()});
  }

  function plural(n, one, many) {
    return `${n} ${n === 1 ? one : many}`;
  }

  function ms(value) {
    if (value === null || value === undefined) return '—';
    const n = Number(value);
    if (n >= 1000) return `${(n / 1000).toLocaleString(undefined, {maximumFractionDigits: 2})} s`;
    return `${n.toLocaleString(undefined, {maximumFractionDigits: 1})} ms`;
  }

  function badge(text, kind) {
    return el('span', {className: `badge badge-${kind}`, text});
  }

  function stateBadge(s) {
    const kinds = {dead: 'bad', pending: 'warn', succeeded: 'good', open: 'info', confirmed: 'good',
                   exhausted: 'bad', cancelled: 'muted', sent: 'info', allocated: 'info',
                   failed: 'warn', 'timed-out': 'warn', rejected: 'bad', outdated: 'muted',
                   asked: 'info', accepted: 'good'};
    return badge(s, kinds[s] || 'muted');
  }

  function warehouseLabel(name, id) {
    return name ? `${name} (#${id})` : `#${id}`;
  }

  function warehouseName(id, extra) {
    const known = (extra && extra.get(id)) ||
                  (state.warehouses || []).find((w) => w.id === id)?.name;
    return warehouseLabel(known, id);
  }

  function table(id, headers, rows, caption) {
    return el('div', {className: 'table-wrap'},
      el('table', {id, dataset: {testid: id}},
        caption ? el('caption', {text: caption}) : null,
        el('thead', null, el('tr', null, headers.map((h) => el('th', {scope: 'col', text: h})))),
        el('tbody', null, rows)));
  }

  // ---- Notices -----------------------------------------------------------------------------

  // The status region stays in the page (a live region that is hidden when its text changes
  // may not be announced); empty, it takes no room.
  function notice(text, kind = 'info') {
    const box = $('notice');
    $('notice-text').textContent = text;
    box.className = `notice notice-${kind}`;
    box.dataset.kind = kind;
    $('notice-dismiss').hidden = false;
  }

  function clearNotice() {
    const box = $('notice');
    $('notice-text').textContent = '';
    box.className = 'notice notice-empty';
    box.dataset.kind = '';
    $('notice-dismiss').hidden = true;
  }

  // ---- API ---------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message, method) {
      super(message);
      this.status = status;
      this.method = method;
    }
  }

  function errorText(status, body) {
    const messages = body && Array.isArray(body.errorMessages) ? body.errorMessages : [];
    if (messages.length) return messages.map(String).join('; ');
    if (status === 403) return 'This key is not allowed to do that.';
    if (status === 503) return 'The database is not available right now (HTTP 503); try again shortly.';
    if (body && typeof body.status === 'string' && body.status !== 'no') {
      return `HTTP ${status}: ${body.status}`;
    }
    return `The server answered HTTP ${status}.`;
  }

  // Calls /console/api/<path> with the key. 401 signs out (the key is no longer known).
  async function api(method, path, key = state.key) {
    let response;
    try {
      response = await fetch(new URL(`api/${path}`, document.baseURI), {
        method,
        headers: {'API-Authorization': key || '', Accept: 'application/json'},
        cache: 'no-store',
        credentials: 'omit',
      });
    } catch (e) {
      throw new ApiError(0, 'The console cannot reach allocation-api (network error); ' +
                            'try again shortly.', method);
    }
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      body = null;
    }
    if (response.ok) return body;
    throw new ApiError(response.status, errorText(response.status, body), method);
  }

  // An error of a call made while signed in: 401 (key removed), or 403 on a read (`console`
  // taken away), goes back to sign-in; the rest to the notice.
  function report(error) {
    if (error instanceof ApiError && error.status === 401) {
      signOut('The console no longer knows this key (HTTP 401). Sign in again.');
      return;
    }
    if (error instanceof ApiError && error.status === 403 && error.method === 'GET') {
      signOut('That key is no longer allowed to use the console (HTTP 403).');
      return;
    }
    notice(error instanceof ApiError ? error.message : `Something went wrong: ${error.message}`,
           'error');
  }

  // ---- Sign-in -----------------------------------------------------------------------------

  function showSignIn(message) {
    stopRefresh();
    destroyCharts();
    state.key = null;
    state.session = null;
    state.warehouses = null;
    $('app-view').hidden = true;
    $('nav').hidden = true;
    $('order-search').hidden = true;
    $('session').hidden = true;
    clear($('view'));
    currentRoute = null;
    $('signin-view').hidden = false;
    $('signin-message').textContent = message || '';
    $('signin-key').value = '';
    $('signin-key').focus();
    document.title = 'Sign in · allocation-relay console';
  }

  function showApp() {
    $('signin-view').hidden = true;
    $('signin-message').textContent = '';
    $('app-view').hidden = false;
    $('nav').hidden = false;
    $('order-search').hidden = false;
    $('session').hidden = false;
    const s = state.session;
    const scope = Array.isArray(s.warehouses) ? `warehouses ${s.warehouses.join(', ')}` :
                                                'every warehouse';
    $('session-who').textContent = `${s.key} · ${s.actions ? 'can act' : 'read only'} · ${scope}`;
    $('session-who').title = `Signed in with key ${s.key}`;
    document.body.classList.toggle('can-act', Boolean(s.actions));
    route(true);
  }

  async function signIn(key) {
    const session = await api('GET', 'session', key);
    state.key = key;
    state.session = session;
    try {
      sessionStorage.setItem(KEY_STORAGE, key);
    } catch (e) {
      // Storage refused (privacy mode): the key lives until the page is reloaded.
    }
    clearNotice();
    showApp();
  }

  function signOut(message) {
    try {
      sessionStorage.removeItem(KEY_STORAGE);
    } catch (e) {
      // nothing stored
    }
    clearNotice();
    showSignIn(message);
  }

  $('signin-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const key = $('signin-key').value.trim();
    const message = $('signin-message');
    if (!key) {
      message.textContent = 'Enter an API key.';
      return;
    }
    $('signin-submit').disabled = true;
    message.textContent = 'Signing in…';
    try {
      await signIn(key);
    } catch (error) {
      if (error.status === 401) message.textContent = 'That key is not known.';
      else if (error.status === 403) message.textContent = 'That key is not allowed to use the console.';
      else message.textContent = error.message;
      $('signin-key').select();
    } finally {
      $('signin-submit').disabled = false;
    }
  });

  $('sign-out').addEventListener('click', () => signOut('Signed out.'));
  $('notice-dismiss').addEventListener('click', clearNotice);

  $('order-search').addEventListener('submit', (event) => {
    event.preventDefault();
    const value = $('order-search-input').value.trim();
    if (!/^[1-9][0-9]*$/.test(value)) {
      notice('An order number is a positive whole number.', 'error');
      $('order-search-input').focus();
      return;
    }
    const target = `#/allocation/${value}`;
    if (location.hash === target) route(true);
    else location.hash = target;
  });

  // ---- Confirmation dialog -----------------------------------------------------------------

  function confirmAction(title, text, confirmLabel) {
    const dialog = $('confirm-dialog');
    $('confirm-title').textContent = title;
    $('confirm-text').textContent = text;
    $('confirm-ok').textContent = confirmLabel;
    dialog.returnValue = '';
    return new Promise((resolve) => {
      const opener = document.activeElement;
      dialog.addEventListener('close', () => {
        resolve(dialog.returnValue === 'confirm');
        if (opener && opener.isConnected) opener.focus();
      }, {once: true});
      dialog.showModal();
      $('confirm-ok').focus();
    });
  }

  $('confirm-ok').addEventListener('click', () => $('confirm-dialog').close('confirm'));
  $('confirm-cancel').addEventListener('click', () => $('confirm-dialog').close('cancel'));
  // Escape fires `cancel` and closes with an empty returnValue: treated as Cancel.

  // Runs an action after confirmation: POST, outcome in the notice, then the view refreshes.
  async function act({title, text, confirmLabel, path, outcome}) {
    if (state.busy) return;
    if (!(await confirmAction(title, text, confirmLabel))) return;
    state.busy = true;
    notice('Working…', 'info');
    try {
      const answer = await api('POST', path);
      notice(outcome(answer || {}), 'success');
    } catch (error) {
      report(error);
      if (!state.session) return;
    } finally {
      state.busy = false;
    }
    await refreshView();
  }

  function resendDeliveryButton(delivery, whName) {
    if (!state.session || !state.session.actions || delivery.state !== 'dead') return null;
    return el('button', {
      type: 'button',
      className: 'small danger',
      text: 'Re-send',
      title: `Re-send dead delivery ${delivery.id}`,
      dataset: {testid: `resend-delivery-${delivery.id}`, focusKey: `resend-${delivery.id}`},
      on: {
        click: () => act({
          title: `Re-send delivery ${delivery.id}?`,
          text: `Dead delivery ${delivery.id} to ${whName} becomes pending and goes out ` +
                'again now, once: if that attempt fails too, it is dead again.',
          confirmLabel: 'Re-send',
          path: `deliveries/${encodeURIComponent(delivery.id)}/resend`,
          outcome: (a) => (Number(a.resent) === 1 ? `Re-sent dead delivery ${delivery.id}` :
                           `Re-sent ${plural(Number(a.resent) || 0, 'dead delivery', 'dead deliveries')}`),
        }),
      },
    });
  }

  // ---- Routing -----------------------------------------------------------------------------

  function parseRoute() {
    const hash = location.hash.replace(/^#/, '') || '/overview';
    const [pathPart, queryPart] = hash.split('?', 2);
    const parts = pathPart.split('/').filter(Boolean);
    const query = new URLSearchParams(queryPart || '');
    if (parts[0] === 'allocation' && parts.length === 2) {
      let order = parts[1];
      try {
        order = decodeURIComponent(order);
      } catch (e) {
        // kept as written; the API answers 404 for it
      }
      return {name: 'allocation', order};
    }
    if (parts[0] === 'deliveries' && parts.length === 1) {
      return {name: 'deliveries', state: query.get('state') || '',
              warehouse: query.get('warehouse') || '', before: query.get('before') || ''};
    }
    return {name: 'overview'};
  }

  let currentRoute = null;

  // Renders the route of the URL. `fresh`: a navigation (focus moves to the heading).
  async function route(fresh) {
    if (!state.session) return;
    const r = parseRoute();
    const seq = ++state.routeSeq;
    const changedPage = !currentRoute || currentRoute.name !== r.name;
    currentRoute = r;
    stopRefresh();
    for (const [name, link] of [['overview', $('nav-overview')], ['deliveries', $('nav-deliveries')]]) {
      if (r.name === name) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    const view = $('view');
    view.dataset.page = r.name;
    if (changedPage || r.name !== 'overview') {
      destroyCharts();
      clear(view);
      view.append(el('p', {className: 'muted loading', text: 'Loading…'}));
    }
    try {
      if (r.name === 'overview') await renderOverview(seq);
      else if (r.name === 'allocation') await renderAllocation(seq, r);
      else await renderDeliveries(seq, r);
    } catch (error) {
      if (seq !== state.routeSeq) return;
      report(error);
      if (state.session) {
        const loading = view.querySelector('.loading');
        if (loading) loading.textContent = 'Could not load this page.';
      }
    }
    if (fresh && seq === state.routeSeq && state.session) {
      const heading = view.querySelector('h1');
      if (heading && document.activeElement === document.body) heading.focus({preventScroll: true});
    }
  }

  // Re-renders the current page in place (after an action, or the timer).
  async function refreshView() {
    if (!state.session) return;
    const r = currentRoute || parseRoute();
    const seq = state.routeSeq;
    try {
      if (r.name === 'overview') await renderOverview(seq);
      else if (r.name === 'allocation') await renderAllocation(seq, r);
      else await renderDeliveries(seq, r);
    } catch (error) {
      if (seq === state.routeSeq) report(error);
    }
  }

  window.addEventListener('hashchange', () => route(true));

  // Replaces `node`'s children, keeping keyboard focus on the element with the same focus key.
  function replaceKeepingFocus(node, children) {
    const active = document.activeElement;
    const focusKey = active && node.contains(active) ? active.dataset.focusKey : null;
    clear(node);
    append(node, children);
    if (focusKey) {
      const again = node.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`);
      if (again) again.focus({preventScroll: true});
    }
  }

  // ---- Overview ----------------------------------------------------------------------------

  function stopRefresh() {
    if (state.timer) clearTimeout(state.timer);
    state.timer = null;
  }

  function scheduleRefresh(seq) {
    stopRefresh();
    state.timer = setTimeout(async () => {
      state.timer = null;
      if (seq !== state.routeSeq || !state.session || currentRoute.name !== 'overview') return;
      if ($('confirm-dialog').open || state.busy) {
        scheduleRefresh(seq);
        return;
      }
      try {
        await renderOverview(seq);
      } catch (error) {
        if (seq !== state.routeSeq) return;
        report(error);
        if (state.session) scheduleRefresh(seq);  // keep trying while the page is shown
      }
    }, REFRESH_MS);
  }

  function destroyCharts() {
    if (!state.charts) return;
    state.charts.delivered.destroy();
    state.charts.failures.destroy();
    state.charts = null;
  }

  function latencyCell(latency) {
    if (!latency || !latency.calls) return el('td', {className: 'muted', text: 'no calls'});
    const show = (v) => (v === null || v === undefined ? '> 10 s' : `≤ ${ms(v)}`);
    return el('td', {className: 'nowrap', title: `${latency.calls} calls; upper bounds of the histogram bucket`},
      el('span', {text: `p50 ${show(latency.p50Ms)}`}), el('br'),
      el('span', {text: `p99 ${show(latency.p99Ms)}`}), el('br'),
      el('span', {className: 'muted small', text: plural(latency.calls, 'call', 'calls')}));
  }

  function webhookCell(w) {
    const cell = el('td', {className: 'webhook', dataset: {testid: `webhook-${w.id}`, webhook: w.webhook}});
    if (w.webhook === 'enabled') cell.append(badge('enabled', 'good'));
    else if (w.webhook === 'disabled') {
      cell.append(badge('disabled', 'bad'));
      if (w.disabledReason) cell.append(el('div', {className: 'small', text: w.disabledReason}));
      if (w.disabledAt) cell.append(el('div', {className: 'small muted'}, 'since ', timeEl(w.disabledAt)));
    } else cell.append(badge('none', 'muted'), el('div', {className: 'small muted', text: 'polls the API'}));
    return cell;
  }

  function overviewRow(w) {
    const count = (n, testid) => el('td', {className: 'num', text: n, dataset: {testid}});
    const name = w.name;
    const actions = el('td', {className: 'actions'});
    if (state.session.actions) {
      if (w.deadDeliveries > 0) {
        actions.append(el('button', {
          type: 'button', className: 'small danger', text: 'Re-send dead',
          dataset: {testid: `resend-dead-${w.id}`, focusKey: `resend-dead-${w.id}`},
          on: {click: () => act({
            title: `Re-send the dead deliveries of ${name}?`,
            text: `Every dead delivery of ${warehouseLabel(name, w.id)} (${w.deadDeliveries} now) ` +
                  'becomes pending and goes out again now, once each.',
            confirmLabel: 'Re-send all',
            path: `warehouses/${encodeURIComponent(w.id)}/resend-dead`,
            outcome: (a) => `Re-sent ${plural(Number(a.resent) || 0, 'dead delivery', 'dead deliveries')} of ${name}`,
          })},
        }));
      }
      if (w.webhook === 'disabled') {
        actions.append(el('button', {
          type: 'button', className: 'small', text: 'Enable webhook',
          dataset: {testid: `enable-webhook-${w.id}`, focusKey: `enable-webhook-${w.id}`},
          on: {click: () => act({
            title: `Enable the webhook of ${name}?`,
            text: `The webhook of ${warehouseLabel(name, w.id)} was turned off by a 410 Gone. ` +
                  'Enabled, its pending deliveries go out again.',
            confirmLabel: 'Enable',
            path: `warehouses/${encodeURIComponent(w.id)}/enable-webhook`,
            outcome: (a) => (a.enabled ? `Enabled the webhook of ${name}` :
                                         `The webhook of ${name} was not disabled; nothing changed`),
          })},
        }));
      }
    }
    const deadLink = el('a', {
      href: `#/deliveries?state=dead&warehouse=${encodeURIComponent(w.id)}`,
      text: w.deadDeliveries,
      title: `Dead deliveries of ${name}`,
      className: w.deadDeliveries > 0 ? 'dead-link has-dead' : 'dead-link',
      dataset: {testid: `dead-link-${w.id}`, focusKey: `dead-link-${w.id}`},
    });
    return el('tr', {dataset: {testid: `warehouse-row-${w.id}`, warehouseId: w.id}},
      el('th', {scope: 'row'},
        el('span', {className: 'wh-name', text: name}),
        el('div', {className: 'small muted', text: `#${w.id} · ${w.policy || 'direct-then-confirm'}`})),
      count(w.pendingRequests, `pending-requests-${w.id}`),
      count(w.askedChecks, `asked-checks-${w.id}`),
      count(w.queuedEvents, `queued-events-${w.id}`),
      count(w.pendingDeliveries, `pending-deliveries-${w.id}`),
      el('td', {className: 'num', dataset: {testid: `dead-deliveries-${w.id}`}}, deadLink),
      webhookCell(w),
      el('td', {dataset: {testid: `last-success-${w.id}`}}, timeEl(w.lastSuccessAt)),
      latencyCell(w.latency),
      actions);
  }

  function minuteLabel(iso) {
    const d = new Date(iso);
    return d.toLocaleTimeString(undefined, {hour: '2-digit', minute: '2-digit'});
  }

  function chartOptions(title) {
    return {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      interaction: {mode: 'index', intersect: false},
      plugins: {
        title: {display: false, text: title},
        legend: {position: 'bottom', labels: {boxWidth: 12}},
        tooltip: {callbacks: {title: (items) => (items.length ? items[0].label : '')}},
      },
      scales: {
        x: {stacked: true, ticks: {maxTicksLimit: 8, maxRotation: 0, autoSkip: true, autoSkipPadding: 12},
            grid: {display: false}},
        y: {stacked: true, beginAtZero: true, ticks: {precision: 0}},
      },
    };
  }

  function chartData(perMinute) {
    const labels = perMinute.map((m) => minuteLabel(m.minute));
    return {
      labels,
      delivered: perMinute.map((m) => Number(m.delivered) || 0),
      failed: perMinute.map((m) => Number(m.failedAttempts) || 0),
      dead: perMinute.map((m) => Number(m.dead) || 0),
    };
  }

  function makeCharts(deliveredCanvas, failuresCanvas, data) {
    if (typeof window.Chart !== 'function') return null;
    const delivered = new window.Chart(deliveredCanvas, {
      type: 'bar',
      data: {labels: data.labels, datasets: [
        {label: 'Delivered', data: data.delivered, backgroundColor: '#16a34a', borderWidth: 0},
      ]},
      options: chartOptions('Deliveries per minute'),
    });
    const failures = new window.Chart(failuresCanvas, {
      type: 'bar',
      data: {labels: data.labels, datasets: [
        {label: 'Failed attempts', data: data.failed, backgroundColor: '#f59e0b', borderWidth: 0},
        {label: 'Went dead', data: data.dead, backgroundColor: '#dc2626', borderWidth: 0},
      ]},
      options: chartOptions('Failures per minute'),
    });
    return {delivered, failures};
  }

  function updateCharts(data) {
    const {delivered, failures} = state.charts;
    delivered.data.labels = data.labels;
    delivered.data.datasets[0].data = data.delivered;
    failures.data.labels = data.labels;
    failures.data.datasets[0].data = data.failed;
    failures.data.datasets[1].data = data.dead;
    delivered.update('none');
    failures.update('none');
  }

  function sum(values) {
    return values.reduce((a, b) => a + b, 0);
  }

  async function renderOverview(seq) {
    const answer = await api('GET', 'overview');
    if (seq !== state.routeSeq || !state.session) return;
    const warehouses = Array.isArray(answer.warehouses) ? answer.warehouses : [];
    const perMinute = Array.isArray(answer.perMinute) ? answer.perMinute : [];
    state.warehouses = warehouses.map((w) => ({id: w.id, name: w.name}));
    const view = $('view');
    let page = view.querySelector('#overview');
    if (!page) {
      destroyCharts();
      const deliveredCanvas = el('canvas', {id: 'chart-delivered', dataset: {testid: 'chart-delivered'},
                                            role: 'img', 'aria-label': 'Deliveries per minute'});
      const failuresCanvas = el('canvas', {id: 'chart-failures', dataset: {testid: 'chart-failures'},
                                           role: 'img', 'aria-label': 'Failed attempts and dead deliveries per minute'});
      page = el('section', {id: 'overview', className: 'page'},
        el('div', {className: 'page-head'},
          el('h1', {tabIndex: -1, text: 'Overview'}),
          el('p', {id: 'overview-asof', className: 'muted small'})),
        el('div', {id: 'overview-table-box'}),
        el('div', {className: 'charts'},
          el('figure', {className: 'card chart-card'},
            el('figcaption', null, el('h2', {text: 'Deliveries per minute'}),
              el('span', {id: 'chart-delivered-summary', className: 'muted small'})),
            el('div', {className: 'chart-box'}, deliveredCanvas)),
          el('figure', {className: 'card chart-card'},
            el('figcaption', null, el('h2', {text: 'Failed attempts and dead deliveries per minute'}),
              el('span', {id: 'chart-failures-summary', className: 'muted small'})),
            el('div', {className: 'chart-box'}, failuresCanvas))));
      clear(view);
      view.append(page);
    }
    const asOf = $('overview-asof');
    clear(asOf);
    append(asOf, ['As of ', timeEl(answer.now),
                  `; latency over the last ${answer.latencyWindowMinutes ?? 60} minutes; refreshes every 5 s.`]);
    const box = $('overview-table-box');
    const headers = ['Warehouse', 'Pending requests', 'Asked checks', 'Queued events',
                     'Pending deliveries', 'Dead deliveries', 'Webhook', 'Last success',
                     'Latency (p50, p99)', 'Actions'];
    let tbody = box.querySelector('tbody');
    if (!tbody) {
      box.append(table('overview-table', headers, []));
      tbody = box.querySelector('tbody');
    }
    const rows = warehouses.length ? warehouses.map(overviewRow) :
      [el('tr', null, el('td', {colSpan: headers.length, className: 'muted', text: 'No warehouses this key may see.'}))];
    replaceKeepingFocus(tbody, rows);

    const data = chartData(perMinute);
    if (state.charts) updateCharts(data);
    else state.charts = makeCharts($('chart-delivered'), $('chart-failures'), data);
    if (!state.charts) notice('Chart.js did not load; the charts are not shown.', 'error');
    $('chart-delivered-summary').textContent =
      `${sum(data.delivered)} delivered in the last ${perMinute.length} minutes`;
    $('chart-failures-summary').textContent =
      `${sum(data.failed)} failed attempts, ${sum(data.dead)} went dead in the last ${perMinute.length} minutes`;
    view.dataset.loaded = 'overview';
    document.title = 'Overview · allocation-relay console';
    scheduleRefresh(seq);
  }

  // ---- Allocation --------------------------------------------------------------------------

  function attemptDetails(a, openHead = false) {
    const status = a.httpStatus === null || a.httpStatus === undefined || a.httpStatus === 0 ?
      badge('no answer', 'bad') : badge(`HTTP ${a.httpStatus}`, a.httpStatus >= 200 && a.httpStatus < 300 ? 'good' : 'bad');
    const parts = [status, el('span', {className: 'muted', text: ` in ${ms(a.durationMs)}`})];
    // The error, unless it only repeats the status ("HTTP 500").
    if (a.error && a.error !== `HTTP ${a.httpStatus}`) {
      parts.push(el('div', {className: 'attempt-error', text: a.error}));
    }
    if (a.responseHead) {
      parts.push(el('details', {className: 'response-head', open: openHead},
        el('summary', {text: 'Response head'}),
        el('pre', null, el('code', {text: a.responseHead}))));
    }
    return parts;
  }

  async function renderAllocation(seq, r) {
    const view = $('view');
    let answer;
    try {
      answer = await api('GET', `allocations/${encodeURIComponent(r.order)}`);
    } catch (error) {
      if (seq !== state.routeSeq) return;
      if (error.status === 404 || error.status === 400) {
        clear(view);
        view.append(el('section', {id: 'allocation', className: 'page'},
          el('h1', {tabIndex: -1, text: `Order ${r.order}`}),
          el('p', {id: 'allocation-missing', className: 'card empty', dataset: {testid: 'allocation-missing'},
                   text: error.message || `No allocation for order ${r.order}`})));
        view.dataset.loaded = 'allocation';
        return;
      }
      throw error;
    }
    if (seq !== state.routeSeq || !state.session) return;
    const a = answer.allocation || {};
    const requests = answer.requests || [];
    const checks = answer.checks || [];
    const events = answer.events || [];
    const deliveries = answer.deliveries || [];

    const names = new Map();
    for (const g of a.groups || []) for (const w of g.warehouses || []) names.set(w.id, w.name);
    for (const q of requests) names.set(q.warehouseId, q.warehouseName);
    for (const c of checks) names.set(c.warehouseId, c.warehouseName);
    const whName = (id) => warehouseName(id, names);

    const summary = el('dl', {className: 'summary card', id: 'allocation-summary'},
      el('dt', {text: 'State'}), el('dd', {dataset: {testid: 'allocation-state'}}, stateBadge(a.state)),
      el('dt', {text: 'Order id'}), el('dd', null, el('code', {text: a.orderId ?? '—'})),
      el('dt', {text: 'Confirmed by'}),
      el('dd', {text: a.confirmedWarehouseId ? whName(a.confirmedWarehouseId) : '—'}),
      el('dt', {text: 'Current group'}), el('dd', {text: a.currentGroup ?? '—'}),
      el('dt', {text: 'Created'}), el('dd', null, timeEl(a.createdAt)),
      el('dt', {text: 'Updated'}), el('dd', null, timeEl(a.updatedAt)));

    const groups = el('ol', {className: 'groups', id: 'allocation-groups'},
      (a.groups || []).map((g) => el('li', {
        className: g.current ? 'group current' : 'group',
        'aria-current': g.current ? 'step' : null,
        dataset: {testid: `group-${g.group}`, current: g.current ? 'true' : 'false'},
      },
      el('span', {className: 'group-name', text: `Group ${g.group}`}),
      g.current ? badge('current', 'info') : null,
      el('span', {className: 'group-warehouses',
                  text: (g.warehouses || []).map((w) => warehouseLabel(w.name, w.id)).join(', ') || '—'}))));

    const requestRows = requests.map((q) => el('tr', {dataset: {testid: `request-row-${q.id}`}},
      el('td', {className: 'num', text: q.id}),
      el('td', {text: warehouseLabel(q.warehouseName, q.warehouseId)}),
      el('td', {className: 'num', text: q.group}),
      el('td', null, stateBadge(q.status)),
      el('td', null, timeEl(q.createdAt)),
      el('td', null, timeEl(q.expiresAt)),
      el('td', null, timeEl(q.updatedAt))));
    const checkRows = checks.map((c) => el('tr', {dataset: {testid: `check-row-${c.id}`}},
      el('td', {className: 'num', text: c.id}),
      el('td', {text: warehouseLabel(c.warehouseName, c.warehouseId)}),
      el('td', {className: 'num', text: c.group}),
      el('td', null, stateBadge(c.status)),
      el('td', null, timeEl(c.createdAt)),
      el('td', null, timeEl(c.expiresAt)),
      el('td', null, timeEl(c.updatedAt))));
    const deliveryRows = deliveries.map((d) => el('tr', {dataset: {testid: `allocation-delivery-${d.id}`, state: d.state}},
      el('td', {className: 'num', text: d.id}),
      el('td', null, el('code', {className: 'small', text: d.uid ?? ''})),
      el('td', {text: whName(d.warehouseId)}),
      el('td', null, stateBadge(d.state)),
      el('td', {className: 'num', text: d.attemptCount}),
      el('td', null, timeEl(d.createdAt)),
      el('td', null, timeEl(d.nextAttemptAt)),
      el('td', {className: 'actions'}, resendDeliveryButton(d, whName(d.warehouseId)))));

    // The timeline: creations, events and attempts, oldest first.
    const entries = [];
    const deliveryOf = new Map(deliveries.map((d) => [d.id, d]));
    for (const q of requests) {
      entries.push({at: q.createdAt, order: 0, kind: 'request',
        text: `Request ${q.id} to ${warehouseLabel(q.warehouseName, q.warehouseId)} created (group ${q.group}); now ${q.status}`});
    }
    for (const c of checks) {
      entries.push({at: c.createdAt, order: 0, kind: 'check',
        text: `Check ${c.id} asked of ${warehouseLabel(c.warehouseName, c.warehouseId)} (group ${c.group}); now ${c.status}`});
    }
    for (const e of events) {
      const subject = e.requestId ? `request ${e.requestId}` : e.checkId ? `check ${e.checkId}` : '';
      const status = e.status ? ` (${e.status})` : '';
      const d = e.deliveryId ? deliveryOf.get(e.deliveryId) : null;
      const where = e.deliveryId ? `in delivery ${e.deliveryId}${d ? ` (${d.state})` : ''}` : 'not yet in a delivery';
      entries.push({at: e.createdAt, order: 1, kind: 'event',
        text: `Event ${e.id}: ${e.type} ${e.action}${status} for ${subject} at ${whName(e.warehouseId)}, ${where}`});
    }
    for (const d of deliveries) {
      entries.push({at: d.createdAt, order: 2, kind: 'delivery',
        text: `Delivery ${d.id} formed for ${whName(d.warehouseId)}; ${plural(d.attemptCount, 'attempt', 'attempts')}, ${d.state}`});
      for (const at of d.attempts || []) {
        entries.push({at: at.startedAt, order: 3, kind: 'attempt',
          text: `Delivery ${d.id}, attempt ${at.attempt}: `,
          details: attemptDetails(at, !(at.httpStatus >= 200 && at.httpStatus < 300)),
          testid: `attempt-${d.id}-${at.attempt}`});
      }
    }
    entries.forEach((e, i) => { e.index = i; });
    entries.sort((x, y) => (Date.parse(x.at) || 0) - (Date.parse(y.at) || 0) || x.order - y.order || x.index - y.index);
    const timeline = el('ol', {className: 'timeline', id: 'timeline', dataset: {testid: 'timeline'}},
      entries.map((e) => el('li', {className: `tl tl-${e.kind}`, dataset: {kind: e.kind, testid: e.testid}},
        el('div', {className: 'tl-time'}, timeEl(e.at)),
        el('div', {className: 'tl-body'}, el('span', {className: 'tl-kind', text: e.kind}), ' ',
          el('span', {text: e.text}), e.details || null))));

    const page = el('section', {id: 'allocation', className: 'page', dataset: {order: a.orderNumber ?? r.order}},
      el('div', {className: 'page-head'},
        el('h1', {tabIndex: -1, text: `Order ${a.orderNumber ?? r.order}`}),
        el('button', {type: 'button', className: 'secondary small', text: 'Refresh', id: 'allocation-refresh',
                      dataset: {focusKey: 'allocation-refresh'}, on: {click: () => refreshView()}})),
      el('div', {className: 'two-col'}, summary,
        el('div', {className: 'card'}, el('h2', {text: 'Priority groups'}), groups)),
      el('h2', {text: 'Requests'}),
      requests.length ? table('requests-table', ['Id', 'Warehouse', 'Group', 'Status', 'Created', 'Expires', 'Updated'], requestRows) :
        el('p', {className: 'muted', text: 'No requests.'}),
      checks.length ? [el('h2', {text: 'Checks'}),
        table('checks-table', ['Id', 'Warehouse', 'Group', 'Status', 'Asked', 'Expires', 'Updated'], checkRows)] : null,
      el('h2', {text: 'Deliveries'}),
      deliveries.length ? table('allocation-deliveries-table', ['Id', 'Delivery id', 'Warehouse', 'State', 'Attempts', 'Created', 'Next attempt', 'Actions'], deliveryRows) :
        el('p', {className: 'muted', text: 'No deliveries.'}),
      el('h2', {text: 'Timeline'}),
      entries.length ? timeline : el('p', {className: 'muted', text: 'Nothing happened yet.'}));
    replaceKeepingFocus(view, [page]);
    view.dataset.loaded = 'allocation';
    document.title = `Order ${a.orderNumber ?? r.order} · allocation-relay console`;
  }

  // ---- Deliveries --------------------------------------------------------------------------

  function deliveriesHash(filters) {
    const q = new URLSearchParams();
    if (filters.state) q.set('state', filters.state);
    if (filters.warehouse) q.set('warehouse', filters.warehouse);
    if (filters.before) q.set('before', filters.before);
    const s = q.toString();
    return `#/deliveries${s ? `?${s}` : ''}`;
  }

  async function renderDeliveries(seq, r) {
    const q = new URLSearchParams();
    if (r.state) q.set('state', r.state);
    if (r.warehouse) q.set('warehouse', r.warehouse);
    if (r.before) q.set('before', r.before);
    q.set('limit', '50');
    const [answer] = await Promise.all([
      api('GET', `deliveries?${q}`),
      state.warehouses ? null : api('GET', 'overview').then((o) => {
        state.warehouses = (o.warehouses || []).map((w) => ({id: w.id, name: w.name}));
      }),
    ]);
    if (seq !== state.routeSeq || !state.session) return;
    const deliveries = answer.deliveries || [];

    const stateSelect = el('select', {id: 'filter-state', name: 'state', dataset: {testid: 'filter-state'}},
      [['', 'Any state'], ['pending', 'Pending'], ['succeeded', 'Succeeded'], ['dead', 'Dead']].map(
        ([value, label]) => el('option', {value, text: label, selected: value === r.state})));
    const whSelect = el('select', {id: 'filter-warehouse', name: 'warehouse', dataset: {testid: 'filter-warehouse'}},
      el('option', {value: '', text: 'Every warehouse'}),
      (state.warehouses || []).map((w) => el('option', {value: String(w.id), text: warehouseLabel(w.name, w.id),
                                                         selected: String(w.id) === r.warehouse})));
    if (r.warehouse && !(state.warehouses || []).some((w) => String(w.id) === r.warehouse)) {
      whSelect.append(el('option', {value: r.warehouse, text: `#${r.warehouse}`, selected: true}));
    }
    const go = (extra) => {
      location.hash = deliveriesHash({state: stateSelect.value, warehouse: whSelect.value, ...extra});
    };
    stateSelect.addEventListener('change', () => go({}));
    whSelect.addEventListener('change', () => go({}));
    const filters = el('form', {id: 'deliveries-filters', className: 'filters card',
                                on: {submit: (e) => { e.preventDefault(); go({}); }}},
      el('label', {htmlFor: 'filter-state', text: 'State'}), stateSelect,
      el('label', {htmlFor: 'filter-warehouse', text: 'Warehouse'}), whSelect,
      el('button', {type: 'submit', className: 'secondary small', text: 'Show'}),
      el('button', {type: 'button', className: 'secondary small', text: 'Refresh', id: 'deliveries-refresh',
                    dataset: {testid: 'deliveries-refresh', focusKey: 'deliveries-refresh'},
                    on: {click: () => refreshView()}}));

    const rows = deliveries.map((d) => {
      const name = d.warehouseName ? warehouseLabel(d.warehouseName, d.warehouseId) : warehouseName(d.warehouseId);
      const last = d.lastAttempt;
      return el('tr', {dataset: {testid: `delivery-row-${d.id}`, deliveryId: d.id, state: d.state}},
        el('td', {className: 'num', text: d.id, title: d.uid ? `delivery ${d.uid}` : null}),
        el('td', {text: name}),
        el('td', {dataset: {testid: `delivery-state-${d.id}`}}, stateBadge(d.state)),
        el('td', {className: 'num', text: d.attemptCount}),
        el('td', null, timeEl(d.createdAt)),
        el('td', null, timeEl(d.nextAttemptAt)),
        el('td', {text: (d.requestIds || []).join(', ') || '—'}),
        el('td', {className: 'last-attempt'}, last ? [timeEl(last.startedAt), ' ', attemptDetails(last)] :
          el('span', {className: 'muted', text: 'not tried yet'})),
        el('td', {className: 'actions'}, resendDeliveryButton(d, name)));
    });
    const stateName = r.state ? `${r.state[0].toUpperCase()}${r.state.slice(1)} deliveries` : 'Deliveries';
    const describe = [stateName,
                      r.warehouse ? ` of ${warehouseName(Number(r.warehouse))}` : '',
                      r.before ? `, older than ${r.before}` : ', newest first'].join('');
    const pager = el('div', {className: 'pager'},
      r.before ? el('button', {type: 'button', className: 'secondary', id: 'deliveries-newest', text: '⇤ Newest',
                               dataset: {testid: 'deliveries-newest', focusKey: 'deliveries-newest'},
                               on: {click: () => go({before: ''})}}) : null,
      answer.next !== null && answer.next !== undefined ?
        el('button', {type: 'button', className: 'secondary', id: 'deliveries-older', text: 'Older ⇥',
                      dataset: {testid: 'deliveries-older', focusKey: 'deliveries-older'},
                      on: {click: () => go({before: String(answer.next)})}}) : null);
    const page = el('section', {id: 'deliveries', className: 'page'},
      el('div', {className: 'page-head'}, el('h1', {tabIndex: -1, text: 'Deliveries'}),
        el('p', {className: 'muted small', id: 'deliveries-description', text: describe})),
      filters,
      deliveries.length ?
        table('deliveries-table', ['Id', 'Warehouse', 'State', 'Attempts', 'Created', 'Next attempt',
                                   'Requests', 'Last attempt', 'Actions'], rows) :
        el('p', {className: 'card empty', id: 'deliveries-empty', text: 'No deliveries match.'}),
      pager);
    replaceKeepingFocus($('view'), [page]);
    $('view').dataset.loaded = 'deliveries';
    document.title = 'Deliveries · allocation-relay console';
  }

  // ---- Start -------------------------------------------------------------------------------

  async function start() {
    let stored = null;
    try {
      stored = sessionStorage.getItem(KEY_STORAGE);
    } catch (e) {
      stored = null;
    }
    if (!stored) {
      showSignIn('');
      return;
    }
    try {
      await signIn(stored);
    } catch (error) {
      try {
        sessionStorage.removeItem(KEY_STORAGE);
      } catch (e) {
        // nothing stored
      }
      showSignIn(error.status === 401 ? 'The console no longer knows this key. Sign in again.' :
                 error.status === 403 ? 'That key is not allowed to use the console.' : error.message);
    }
  }

  start();
})();
