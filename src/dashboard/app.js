/*
 * personad dashboard: a list view (#/) and a detail view (#/cluster/NAME), fed by
 * list+watch: GET /api/clusters (its "seq" and "epoch" are the position of the
 * list), then /ws?since=SEQ&epoch=EPOCH, which sends every event after it.  An
 * event carries only a name (and its seq): the dashboard refetches that one
 * cluster.  On close the socket is reopened after 5 s from the last seq seen,
 * so the events sent meanwhile are replayed and only the clusters they name are
 * refetched; a {"type":"resync"} (personad restarted, or too far behind) means
 * the list is refetched.  The header shows the last event's seq and time.
 *
 * Every string that comes from a persona is put into the page with textContent
 * or createTextNode, never innerHTML.
 *
 * personad --auth-token-file: when the API answers 401 the page asks for a
 * token (a form, #auth), keeps it in sessionStorage (this tab's session) and
 * sends it as "Authorization: Bearer" on its fetches and as access_token on
 * the /ws URL (a WebSocket cannot carry headers).  A refused token asks again.
 * Without a 401 nothing of this shows.
 */
'use strict';
(function () {
  const RECONNECT_MS = 5000;
  const FLASH_MS = 2000;
  const PHASES = ['Ready', 'Discovering', 'Degraded', 'Unknown'];

  const $ = (id) => document.getElementById(id);
  const state = {
    loaded: false,      /* the list has been fetched once */
    rows: new Map(),    /* name -> {tr, key}: rendered rows, key = JSON of the cluster */
    detailName: null,   /* cluster shown in the detail view, or null for the list */
    detail: null,       /* last object fetched for it */
    clusters: new Map(), /* name -> cluster object, as last fetched */
    seq: null,          /* position: the last event seen (or the list's seq) ... */
    epoch: null,        /* ... in this run of personad */
  };

  /* --- small DOM helpers: text only ------------------------------------- */

  function str(v) {
    if (v === undefined || v === null) return '';
    return typeof v === 'object' ? JSON.stringify(v) : String(v);
  }

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = str(text);
    if (cls) e.className = cls;
    return e;
  }

  function cell(tr, label, content, cls) {
    const td = el('td', undefined, cls);
    if (label) td.dataset.label = label;
    if (content instanceof Node) td.appendChild(content);
    else td.textContent = str(content) || '—';
    tr.appendChild(td);
    return td;
  }

  function phaseBadge(phase) {
    const p = str(phase) || 'Unknown';
    const known = PHASES.includes(p);
    return el('span', p, 'badge phase-' + (known ? p.toLowerCase() : 'unknown'));
  }

  function boolBadge(v, yes, no) {
    if (v === true) return el('span', yes, 'badge yes');
    if (v === false) return el('span', no, 'badge no');
    return el('span', 'unknown', 'badge');
  }

  function nodeCount(st) {
    const nodes = Array.isArray(st.nodes) ? st.nodes : [];
    const ready = nodes.filter((n) => n && n.ready === true).length;
    return ready + '/' + nodes.length;
  }

  function clusterHash(name) {
    return '#/cluster/' + encodeURIComponent(name);
  }

  /* "Jan 15, 2025, 9:30 AM" with "3 min ago" below it; the raw value as a tooltip. */
  function when(ts) {
    const d = new Date(str(ts));
    if (!ts || isNaN(d)) return str(ts);
    const s = Math.round((Date.now() - d) / 1000);
    let ago = '';
    if (s >= 0 && s < 60) ago = 'just now';
    else if (s >= 60 && s < 3600) ago = Math.round(s / 60) + ' min ago';
    else if (s >= 3600 && s < 172800) ago = Math.round(s / 3600) + ' h ago';
    else if (s >= 172800) ago = Math.round(s / 86400) + ' days ago';
    const span = el('span', d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' }));
    span.title = str(ts);
    if (ago) span.appendChild(el('small', ago));
    return span;
  }

  function facts(dl, items) {
    const frag = document.createDocumentFragment();
    for (const [label, value] of items) {
      const div = el('div');
      div.appendChild(el('dt', label));
      const dd = el('dd');
      if (value instanceof Node) dd.appendChild(value);
      else dd.textContent = str(value) || '—';
      div.appendChild(dd);
      frag.appendChild(div);
    }
    dl.replaceChildren(frag);
  }

  function fill(table, items, columns, none) {
    const tbody = table.tBodies[0];
    const frag = document.createDocumentFragment();
    for (const it of items) {
      const tr = el('tr');
      for (const col of columns) cell(tr, null, col(it || {}), col.cls);
      frag.appendChild(tr);
    }
    if (items.length === 0) {
      const tr = el('tr');
      cell(tr, null, none, 'none').colSpan = columns.length;
      frag.appendChild(tr);
    }
    tbody.replaceChildren(frag);
  }

  /* --- status line and errors ------------------------------------------- */

  function setConn(st, text) {
    const c = $('conn');
    $('offline').hidden = st !== 'reconnecting';
    c.dataset.state = st;
    c.textContent = text;
  }

  function showError(msg) {
    const e = $('error');
    e.textContent = msg || '';
    e.hidden = !msg;
  }

  /* --- bearer token ---------------------------------------------------- */

  const TOKEN_KEY = 'personad-token';
  let token = null;
  try {
    token = sessionStorage.getItem(TOKEN_KEY);
  } catch (e) { /* no storage: asked for again on each load */ }
  let asking = false;

  function withToken(headers) {
    if (token) headers.Authorization = 'Bearer ' + token;
    return headers;
  }

  /* A 401: show the form (saying so if a token was refused); its submit starts over. */
  function askToken() {
    if (asking) return;
    asking = true;
    $('auth-bad').hidden = !token;
    $('auth').hidden = false;
    setConn('connecting', 'token needed');
    $('auth-token').focus();
  }

  function unauthorized() {
    askToken();
    const e = new Error('unauthorized');
    e.auth = true;
    return e;
  }

  /* --- REST ------------------------------------------------------------- */

  async function getJSON(url) {
    const r = await fetch(url, { cache: 'no-cache', headers: withToken({ Accept: 'application/json' }) });
    if (r.status === 401) throw unauthorized();
    if (r.status === 404) return null;
    if (!r.ok) throw new Error('HTTP ' + r.status + ' for ' + url);
    return r.json();
  }

  /* Run fn one at a time; calls made while it runs collapse into one more run. */
  function serial(fn) {
    let running = null;
    let again = false;
    return function () {
      if (running) {
        again = true;
        return running;
      }
      running = (async () => {
        try {
          do {
            again = false;
            await fn();
          } while (again);
        } finally {
          running = null;
        }
      })();
      return running;
    };
  }

  /* The list and the clusters named by events are fetched through one queue,
   * so a response never overwrites a newer one.  wantList: the whole list;
   * names: clusters to refetch one by one. */
  const want = { list: false, names: new Set() };

  function renderClusters() {
    const list = [...state.clusters.values()];
    list.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    renderList(list);
  }

  async function fetchList() {
    let body;
    try {
      body = await getJSON('/api/clusters');
      if (!body || !Array.isArray(body.clusters)) throw new Error('bad /api/clusters response');
    } catch (e) {
      if (e.auth) return false;
      showError('Cannot load clusters from personad (' + e.message + '); showing the last data received.');
      return false;
    }
    showError('');
    state.clusters = new Map();
    for (const c of body.clusters) if (c && typeof c.name === 'string') state.clusters.set(c.name, c);
    /* The list's position, where the watch starts; never back over events already seen. */
    if (typeof body.epoch === 'string' && (body.epoch !== state.epoch || state.seq === null)) {
      state.epoch = body.epoch;
      state.seq = body.seq;
    }
    renderClusters();
    return true;
  }

  async function fetchOne(name) {
    let c;
    try {
      c = await getJSON('/api/clusters/' + encodeURIComponent(name));
    } catch (e) {
      if (!e.auth)
        showError('Cannot load cluster from personad (' + e.message + '); showing the last data received.');
      want.list = true; /* do not lose the change: the list will have it */
      return;
    }
    if (c === null) state.clusters.delete(name);
    else state.clusters.set(name, c);
  }

  const sync = serial(async () => {
    if (want.list) {
      want.list = false;
      want.names.clear(); /* the list has them all */
      if (!(await fetchList())) return;
    }
    if (want.names.size === 0) return;
    while (want.names.size) {
      const name = want.names.values().next().value;
      want.names.delete(name);
      await fetchOne(name);
      if (want.list) break;
    }
    renderClusters();
    if (want.list) await fetchList();
  });

  function refreshList() {
    want.list = true;
    return sync();
  }

  function refreshNamed(name) {
    want.names.add(name);
    return sync();
  }

  const refreshDetail = serial(async () => {
    const name = state.detailName;
    if (name === null) return;
    let c;
    try {
      c = await getJSON('/api/clusters/' + encodeURIComponent(name));
    } catch (e) {
      if (!e.auth)
        showError('Cannot load cluster from personad (' + e.message + '); showing the last data received.');
      return;
    }
    if (name !== state.detailName) return; /* navigated away meanwhile */
    if (c === null) markGone();
    else renderDetail(c);
  });

  function refreshAll() {
    refreshList();
    if (state.detailName !== null) refreshDetail();
  }

  /* --- list view -------------------------------------------------------- */

  function listRow(c) {
    const spec = c.spec || {};
    const st = c.status || {};
    const tr = el('tr');
    tr.dataset.name = c.name;
    const a = el('a', c.name);
    a.href = clusterHash(c.name);
    cell(tr, 'Name', a);
    cell(tr, 'Environment', spec.environment || 'development');
    cell(tr, 'Phase', phaseBadge(st.phase));
    cell(tr, 'Nodes', nodeCount(st), 'num').title = 'ready / total';
    cell(tr, 'Kubernetes', st.kubernetesVersion, 'num');
    cell(tr, 'Description', spec.description);
    tr.addEventListener('click', (ev) => {
      if (!ev.target.closest('a')) location.hash = clusterHash(c.name);
    });
    return tr;
  }

  function flash(tr) {
    tr.classList.add('flash');
    setTimeout(() => tr.classList.remove('flash'), FLASH_MS);
  }

  function renderList(list) {
    const tbody = $('clusters').tBodies[0];
    const rows = new Map();
    list.forEach((c, i) => {
      const key = JSON.stringify(c);
      const old = state.rows.get(c.name);
      let tr = old && old.tr;
      if (!old || old.key !== key) {
        tr = listRow(c);
        if (old) tbody.replaceChild(tr, old.tr);
        if (state.loaded) flash(tr);
      }
      rows.set(c.name, { tr, key });
      /* Move only rows that are out of place, so running highlights continue. */
      if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null);
    });
    for (const [name, r] of state.rows) if (!rows.has(name)) r.tr.remove();
    state.rows = rows;
    state.loaded = true;
    $('clusters').hidden = list.length === 0;
    $('empty').hidden = list.length !== 0;
    $('count').textContent = list.length ? '(' + list.length + ')' : '';
  }

  /* --- detail view ------------------------------------------------------ */

  function renderDetail(c) {
    state.detail = c;
    const spec = c.spec || {};
    const st = c.status || {};
    const rs = st.resourceSummary || {};
    $('gone').hidden = true;
    $('detail').hidden = false;
    $('detail').classList.remove('stale');
    $('d-name').textContent = c.name;
    $('d-desc').textContent = str(spec.description);
    facts($('d-facts'), [
      ['Environment', spec.environment || 'development'],
      ['Phase', phaseBadge(st.phase)],
      ['Nodes ready', nodeCount(st)],
      ['Kubernetes', st.kubernetesVersion],
      ['Platform', st.platform],
      ['Applications', st.applicationCount],
      ['Last discovery', when(st.lastDiscovery)],
    ]);
    facts($('d-res'), [
      ['Total CPU', rs.totalCPU],
      ['Total memory', rs.totalMemory],
      ['Allocatable CPU', rs.allocatableCPU],
      ['Allocatable memory', rs.allocatableMemory],
      ['Running pods', rs.runningPods],
    ]);
    const nodes = Array.isArray(st.nodes) ? st.nodes : [];
    const cap = (k) => (n) => (n.capacity || {})[k];
    $('d-nodes-count').textContent = '(' + nodeCount(st) + ' ready)';
    fill($('d-nodes'), nodes, [
      (n) => n.name,
      (n) => n.role,
      (n) => boolBadge(n.ready, 'Ready', 'NotReady'),
      (n) => n.kubeletVersion,
      (n) => n.containerRuntime,
      cap('cpu'),
      cap('memory'),
      cap('pods'),
    ], 'No nodes reported.');
    const addons = Array.isArray(st.addons) ? st.addons : [];
    $('d-addons-count').textContent = '(' + addons.length + ')';
    fill($('d-addons'), addons, [
      (a) => a.name,
      (a) => a.namespace,
      (a) => boolBadge(a.healthy, 'Healthy', 'Unhealthy'),
      (a) => a.version,
    ], 'No addons reported.');
  }

  function markGone() {
    const g = $('gone');
    const name = state.detailName;
    if (state.detail) {
      g.textContent = 'This cluster was deleted: “' + name +
        '” is no longer in the personas directory. The data below is the last known state.';
      $('detail').classList.add('stale');
    } else {
      g.textContent = 'No cluster named “' + name + '”.';
      $('detail').hidden = true;
    }
    g.hidden = false;
  }

  /* --- routing ---------------------------------------------------------- */

  function route() {
    const m = /^#\/cluster\/(.*)$/.exec(location.hash);
    if (!m) {
      state.detailName = null;
      state.detail = null;
      $('detail-view').hidden = true;
      $('list-view').hidden = false;
      $('crumb').textContent = '';
      document.title = 'Clusters · personad';
      return;
    }
    let name;
    try {
      name = decodeURIComponent(m[1]);
    } catch (e) {
      name = m[1];
    }
    if (name !== state.detailName) {
      state.detailName = name;
      state.detail = null;
      $('gone').hidden = true;
      $('detail').hidden = true; /* until its data arrives */
      window.scrollTo(0, 0);
    }
    $('list-view').hidden = true;
    $('detail-view').hidden = false;
    $('crumb').textContent = '/ ' + name;
    document.title = name + ' · personad';
    refreshDetail();
  }

  /* --- live events ------------------------------------------------------ */

  let retry = 0;
  let sock = null; /* the WebSocket, while open or opening */

  function showPosition(seq, at) {
    const p = $('pos');
    p.dataset.seq = String(seq);
    p.textContent = 'event #' + seq + (at ? ' · ' + at.toLocaleTimeString() : '');
    p.title = at ? 'last event: seq ' + seq + ' at ' + at.toLocaleString() + ' (epoch ' + state.epoch + ')'
      : 'seq ' + seq + ' (epoch ' + state.epoch + ')';
  }

  function onEvent(msg) {
    if (msg.type === 'resync') {
      /* personad restarted, or we were further behind than it keeps: start over
       * from the list, at the position it says. */
      if (!msg.data || typeof msg.data.epoch !== 'string') return;
      state.epoch = msg.data.epoch;
      state.seq = msg.data.seq;
      showPosition(state.seq, null);
      refreshAll();
      return;
    }
    if (typeof msg.seq === 'number') {
      if (state.seq !== null && msg.seq <= state.seq) return; /* seen already */
      state.seq = msg.seq;
      showPosition(msg.seq, new Date());
    }
    const name = msg.data && typeof msg.data.name === 'string' ? msg.data.name : null;
    if (name === null) {
      refreshList();
      return;
    }
    refreshNamed(name);
    if (state.detailName === null || name !== state.detailName) return;
    if (msg.type === 'cluster.deleted') markGone();
    else refreshDetail();
  }

  function reconnectLater() {
    if (retry) return;
    setConn('reconnecting', 'reconnecting…');
    $('conn').title = 'connection lost; retrying every ' + RECONNECT_MS / 1000 + ' s';
    retry = setTimeout(() => {
      retry = 0;
      connect();
    }, RECONNECT_MS);
  }

  async function connect() {
    if (state.epoch === null) {
      await refreshList(); /* list first: its seq and epoch are where the watch starts */
      if (state.epoch === null) {
        if (!asking) reconnectLater(); /* asking: the token's submit connects */
        return;
      }
    }
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host +
      '/ws?since=' + state.seq + '&epoch=' + encodeURIComponent(state.epoch);
    let ws;
    try {
      ws = new WebSocket(token ? url + '&access_token=' + encodeURIComponent(token) : url);
    } catch (e) {
      reconnectLater();
      return;
    }
    sock = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      /* Nothing to refetch: the events missed meanwhile are replayed (or a resync comes). */
      setConn('live', 'live');
      $('conn').title = 'receiving events from ' + url;
    };
    ws.onmessage = (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      if (msg && typeof msg.type === 'string') onEvent(msg);
    };
    ws.onclose = async () => {
      sock = null;
      /* A refused handshake says nothing to the page: ask /ws itself whether it was the token. */
      if (!opened) {
        try {
          const r = await fetch('/ws', { cache: 'no-store', headers: withToken({}) });
          if (r.status === 401) {
            askToken();
            return;
          }
        } catch (e) { /* personad is away */ }
      }
      reconnectLater();
    };
  }

  $('auth').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = $('auth-token').value.trim();
    if (!v) return;
    token = v;
    try {
      sessionStorage.setItem(TOKEN_KEY, v);
    } catch (e) { /* kept for this page only */ }
    $('auth-token').value = '';
    $('auth').hidden = true;
    asking = false;
    if (retry) clearTimeout(retry);
    retry = 0;
    if (state.epoch !== null) refreshList(); /* else connect() fetches it first */
    if (state.detailName !== null) refreshDetail();
    if (!sock) connect();
  });

  window.addEventListener('hashchange', route);
  route();
  connect();
})();
