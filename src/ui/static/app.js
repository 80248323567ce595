// Tomato web UI: live updates, buttons and forms. Hand-written, no build step, no libraries.
//
// - Live: the server streams every committed change (/ui/events, Server-Sent Events). A page
//   says which changes concern it (body[data-watch]); on one, it fetches its own URL again and
//   swaps in the fresh [data-live] parts. The server renders every page; this script never
//   builds markup from data (text goes in with textContent).
// - Changes go to /api/v1 with fetch (JSON). When the server wants an API token, the user is
//   asked for it once; it stays in this browser and is sent as Authorization: Bearer.
'use strict';

(() => {
  const body = document.body;
  const TOKEN_KEY = 'tomato.apiToken';

  // ---------------------------------------------------------------- messages
  let toastTimer = 0;
  function toast(text, kind) {
    const el = document.getElementById('toast');
    if (!el) return;
    el.textContent = text;
    el.dataset.kind = kind || 'info';
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { el.hidden = true; }, kind === 'error' ? 8000 : 3500);
  }

  // ---------------------------------------------------------------- API token
  const storedToken = () => { try { return localStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; } };
  const storeToken = (t) => { try { t ? localStorage.setItem(TOKEN_KEY, t) : localStorage.removeItem(TOKEN_KEY); } catch { /* private mode */ } };

  // Shows the token dialog; resolves with the token, or null when the user cancels.
  function askToken(reason, isError) {
    const dialog = document.getElementById('token-dialog');
    const form = document.getElementById('token-form');
    const input = document.getElementById('token-input');
    const why = document.getElementById('token-reason');
    why.textContent = reason;
    why.dataset.error = isError ? 'true' : 'false';
    input.value = '';
    return new Promise((resolve) => {
      const done = (value) => {
        form.removeEventListener('submit', onSubmit);
        cancel.removeEventListener('click', onCancel);
        dialog.removeEventListener('cancel', onCancel);
        if (dialog.open) dialog.close();
        resolve(value);
      };
      const onSubmit = (e) => {
        e.preventDefault();
        const t = input.value.trim();
        if (t) done(t);
      };
      const onCancel = (e) => { e.preventDefault(); done(null); };
      const cancel = document.getElementById('token-cancel');
      form.addEventListener('submit', onSubmit);
      cancel.addEventListener('click', onCancel);
      dialog.addEventListener('cancel', onCancel);
      dialog.showModal();
      input.focus();
    });
  }

  class Cancelled extends Error {}

  // Calls the API; asks for a token when the server needs one. Answers {status, ok, data}.
  async function api(method, url, payload) {
    let reason = null;
    for (;;) {
      if (reason || (body.dataset.auth === 'required' && !storedToken())) {
        const t = await askToken(reason || 'This server asks for an API token to change anything.', !!reason);
        if (!t) throw new Cancelled('no token');
        storeToken(t);
      }
      const headers = { Accept: 'application/json' };
      if (payload !== undefined) headers['Content-Type'] = 'application/json';
      const token = storedToken();
      if (token) headers.Authorization = 'Bearer ' + token;
      const r = await fetch(url, {
        method,
        headers,
        body: payload === undefined ? undefined : JSON.stringify(payload),
        credentials: 'same-origin',
      });
      let data = null;
      try { data = await r.json(); } catch { /* not JSON */ }
      if (r.status === 401) {
        storeToken('');
        reason = (data && data.error) || 'The token was not accepted.';
        continue;
      }
      return { status: r.status, ok: r.ok, data };
    }
  }

  const failure = (res) => (res.data && res.data.error) || ('The server answered ' + res.status);

  // ---------------------------------------------------------------- live updates
  let refreshing = false;
  let refreshAgain = false;
  let refreshTimer = 0;

  // Fetches this page again and replaces each [data-live] part that changed, keeping which
  // <details> were open and the log panel's content.
  async function refresh() {
    if (refreshing) { refreshAgain = true; return; }
    refreshing = true;
    try {
      const r = await fetch(location.href, { headers: { Accept: 'text/html' }, credentials: 'same-origin' });
      if (!r.ok) return;
      const doc = new DOMParser().parseFromString(await r.text(), 'text/html');
      // A page whose layout changed (a run that finished while open puts its results first
      // and its attempts after them) is swapped whole, not part by part.
      const layout = document.getElementById('page-layout');
      const freshLayout = doc.getElementById('page-layout');
      if (layout && freshLayout && layout.dataset.layout !== freshLayout.dataset.layout) {
        document.querySelector('main').replaceWith(document.adoptNode(doc.querySelector('main')));
        body.dataset.watch = doc.body.dataset.watch || '';
        observeTimes();
        tick();
        followLog();
        return;
      }
      // A part holding the control in use (a priority list being chosen from, a field being
      // typed in) is left alone until the control loses focus, then refreshed.
      const inUse = document.activeElement?.matches('select, input, textarea') ? document.activeElement : null;
      let deferred = false;
      for (const el of document.querySelectorAll('[data-live]')) {
        const fresh = doc.getElementById(el.id);
        if (!fresh) continue;
        if (inUse && el.contains(inUse)) { deferred = true; continue; }
        for (const d of el.querySelectorAll('details[id][open]')) {
          const twin = fresh.querySelector('#' + CSS.escape(d.id));
          if (twin) twin.open = true;
        }
        if (fresh.outerHTML !== el.outerHTML) el.replaceWith(document.adoptNode(fresh));
      }
      if (deferred) inUse.addEventListener('blur', scheduleRefresh, { once: true });
      body.dataset.watch = doc.body.dataset.watch || '';
      tick();
      followLog();
    } catch (e) {
      // The next change or reconnect tries again.
    } finally {
      refreshing = false;
      if (refreshAgain) { refreshAgain = false; refresh(); }
    }
  }

  // Gathers the changes of a short while into one refresh. The first change starts the wait and
  // later ones join it (a steady stream of changes must not postpone the refresh for ever).
  function scheduleRefresh() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(() => {
      refreshTimer = 0;
      refresh();
    }, Number(body.dataset.gather || 150));
  }

  function concerns(change) {
    return (body.dataset.watch || '').split(/\s+/).filter(Boolean).some((w) => {
      const [kind, name] = w.split('/');
      return kind === change.kind && (!name || name === change.name);
    });
  }

  function connect() {
    if (!body.dataset.watch || !window.EventSource) return;
    const state = document.getElementById('live-state');
    const setState = (s, title) => { if (state) { state.dataset.state = s; state.title = title; } };
    const source = new EventSource('/ui/events');
    source.addEventListener('hello', () => {
      setState('open', 'Live: updates as runs change');
      // Changes committed between rendering this page (or losing the stream) and subscribing
      // were not announced to us: catch up once.
      scheduleRefresh();
    });
    source.addEventListener('change', (e) => {
      try { if (concerns(JSON.parse(e.data))) scheduleRefresh(); } catch { /* ignore malformed */ }
    });
    source.addEventListener('refresh', scheduleRefresh);
    source.addEventListener('error', () => setState('error', 'Reconnecting…'));
  }

  // ---------------------------------------------------------------- clocks
  function fmtDuration(s) {
    s = Math.max(0, Math.floor(s));
    const pad = (n) => String(n).padStart(2, '0');
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm ' + pad(s % 60) + 's';
    if (s < 86400) return Math.floor(s / 3600) + 'h ' + pad(Math.floor((s % 3600) / 60)) + 'm';
    return Math.floor(s / 86400) + 'd ' + Math.floor((s % 86400) / 3600) + 'h';
  }

  function tick() {
    const now = Date.now();
    for (const el of document.querySelectorAll('[data-since]')) {
      const since = Date.parse(el.dataset.since);
      if (!Number.isNaN(since)) el.textContent = fmtDuration((now - since) / 1000);
    }
  }

  // Shows times in the reader's zone, naming it (logs and JUnit files are in UTC, which stays
  // in the tooltip).
  function localTimes(root) {
    for (const el of root.querySelectorAll('time[datetime]:not([data-zone])')) {
      const t = new Date(el.getAttribute('datetime'));
      if (Number.isNaN(t.getTime())) continue;
      el.title = el.textContent;
      el.textContent = t.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'long' });
    }
  }

  // Shows every time in <main> in the reader's zone, now and as parts are swapped in.
  let timesObserver = null;
  function observeTimes() {
    const main = document.querySelector('main') || body;
    localTimes(main);
    timesObserver?.disconnect();
    timesObserver = new MutationObserver((records) => {
      for (const rec of records) for (const n of rec.addedNodes) if (n.nodeType === 1) localTimes(n);
    });
    timesObserver.observe(main, { childList: true, subtree: true });
  }

  // ---------------------------------------------------------------- log tail
  let logTimer = 0;
  let logUrl = '';

  async function loadLog() {
    const src = document.getElementById('log-source');
    const pre = document.getElementById('log');
    if (!src || !pre) return;
    pre.hidden = false;
    const url = src.dataset.url;
    const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40;
    try {
      const r = await fetch(url + '?tail=65536', { headers: { Accept: 'text/plain' } });
      const text = r.ok ? await r.text() : '';
      const changed = url !== logUrl;
      logUrl = url;
      pre.textContent = text || '(the log is empty so far)';
      if (atBottom || changed) pre.scrollTop = pre.scrollHeight;
    } catch {
      // Try again on the next tick.
    }
  }

  function followLog() {
    clearTimeout(logTimer);
    const src = document.getElementById('log-source');
    if (!src) return;
    loadLog().then(() => {
      const current = document.getElementById('log-source');
      if (current && current.dataset.follow === 'true') logTimer = setTimeout(followLog, 1500);
    });
  }

  // ---------------------------------------------------------------- run-now form
  // "spec.emails[0]" → "emails": the form field an API error names.
  function fieldOf(parameter) {
    if (!parameter) return '_form';
    const name = parameter.replace(/^spec\./, '').replace(/^metadata\./, '').split(/[.[]/)[0];
    return name || '_form';
  }

  function clearErrors(form) {
    for (const el of form.querySelectorAll('[data-error-for]')) { el.hidden = true; el.textContent = ''; }
    for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  }

  // Shows one error beside its field (or atop the form); a second error for the same place
  // joins the first on a new line. Answers the field's input, if the form has one.
  function showError(form, parameter, message) {
    let field = fieldOf(parameter);
    let slot = form.querySelector('[data-error-for="' + CSS.escape(field) + '"]');
    if (!slot) { slot = form.querySelector('[data-error-for="_form"]'); field = '_form'; }
    slot.textContent = slot.hidden || !slot.textContent ? message : slot.textContent + '\n' + message;
    slot.hidden = false;
    const input = form.querySelector('[name="' + CSS.escape(field) + '"]');
    if (input) input.setAttribute('aria-invalid', 'true');
    return input;
  }

  // Every field error the API names (`errors`), else its one error; the first field at fault
  // takes the focus.
  function showErrors(form, res) {
    const data = res.data || {};
    const all = Array.isArray(data.errors) && data.errors.length
      ? data.errors
      : [{ parameter: data.parameter, error: failure(res) }];
    let first = null;
    for (const e of all) {
      const input = showError(form, e.parameter, e.error);
      first = first || input;
    }
    first?.focus();
  }

  const list = (s) => s.split(/[\s,;]+/).map((x) => x.trim()).filter(Boolean);

  function runSpec(form) {
    const f = new FormData(form);
    const spec = { service: form.dataset.service, stand: (f.get('stand') || '').trim() };
    const packs = f.getAll('packs');
    if (packs.length) spec.packs = packs;
    else if (f.get('category')) spec.category = f.get('category');
    const emails = list(f.get('emails') || '');
    if (emails.length) spec.emails = emails;
    for (const k of ['version', 'issueKey']) {
      const v = (f.get(k) || '').trim();
      if (v) spec[k] = v;
    }
    spec.priority = Number(f.get('priority'));
    return spec;
  }

  // Sends a form's change to the API: `send()` makes the call, `done(res)` follows a success;
  // a refusal shows the API's reason beside the field it names. The button waits meanwhile.
  async function submitForm(form, send, done) {
    clearErrors(form);
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    try {
      const res = await send();
      if (res.ok) {
        done(res);
        return;
      }
      showErrors(form, res);
    } catch (e) {
      if (!(e instanceof Cancelled)) showError(form, null, 'Could not reach the server: ' + e.message);
    } finally {
      button.disabled = false;
    }
  }

  const created = (res) => res.data.metadata.name;

  function submitRun(form) {
    submitForm(
      form,
      () => api('POST', '/api/v1/runs', { spec: runSpec(form) }),
      (res) => location.assign('/runs/' + encodeURIComponent(created(res))),
    );
  }

  // ---------------------------------------------------------------- schedule form
  const scheduleUrl = (name) => '/api/v1/schedules/' + encodeURIComponent(name);

  // Shows only the chosen service's packs, presets and stand hint.
  function showServiceChoices(form) {
    const service = form.elements.service.value;
    for (const el of form.querySelectorAll('[data-for-service]')) {
      const mine = el.dataset.forService === service;
      el.hidden = !mine;
      if (el.tagName === 'OPTION') el.disabled = !mine;
      if (!mine) for (const box of el.querySelectorAll('input[type=checkbox]')) box.checked = false;
    }
    const category = form.elements.category;
    if (category?.selectedOptions[0]?.disabled) category.value = '';
  }

  // A whole number as a number; anything else as typed, for the API to name what is wrong.
  const numberOr = (v) => (/^\d+$/.test(v.trim()) ? Number(v.trim()) : v);

  function scheduleSpec(form) {
    const f = new FormData(form);
    const text = (k) => (f.get(k) || '').trim();
    const spec = runSpec(form);
    spec.service = text('service');
    for (const k of ['schedule', 'timeZone', 'concurrencyPolicy']) spec[k] = text(k);
    spec.suspend = f.get('suspend') === 'on';
    for (const k of ['successfulRunsHistoryLimit', 'failedRunsHistoryLimit']) spec[k] = numberOr(text(k));
    for (const k of ['retries', 'startingDeadlineSeconds']) if (text(k)) spec[k] = numberOr(text(k));
    if (text('timeout')) spec.timeout = text('timeout');
    const env = JSON.parse(form.dataset.env || '[]');
    if (env.length) spec.env = env;
    return spec;
  }

  function submitSchedule(form) {
    const editing = form.dataset.editing === 'true';
    const name = editing ? form.dataset.name : (new FormData(form).get('name') || '').trim();
    const body = { metadata: { name }, spec: scheduleSpec(form) };
    submitForm(
      form,
      () => (editing ? api('PUT', scheduleUrl(name), body) : api('POST', '/api/v1/schedules', body)),
      () => location.assign('/schedules'),
    );
  }

  // ---------------------------------------------------------------- regression form
  const regressionUrl = (name) => '/api/v1/regressions/' + encodeURIComponent(name);

  function regressionSpec(form) {
    const f = new FormData(form);
    const text = (k) => (f.get(k) || '').trim();
    const spec = { service: text('service'), version: text('version'), stand: text('stand'), assessors: list(text('assessors')) };
    // A plan is named or given by id; "#12" as the hint shows a default is an id too.
    const plan = text('plan').replace(/^#(?=\d+$)/, '');
    if (plan) spec.plan = numberOr(plan);
    for (const k of ['issueKey', 'queue']) if (text(k)) spec[k] = text(k);
    const emails = list(text('emails'));
    if (emails.length) spec.emails = emails;
    // datetime-local is the browser's wall time; the API wants an instant.
    if (text('deadline')) spec.deadline = new Date(text('deadline')).toISOString();
    return spec;
  }

  function submitRegression(form) {
    const name = (new FormData(form).get('name') || '').trim();
    const body = { metadata: name ? { name } : {}, spec: regressionSpec(form) };
    submitForm(
      form,
      () => api('POST', '/api/v1/regressions', body),
      (res) => location.assign('/regressions/' + encodeURIComponent(created(res))),
    );
  }

  // An instant as the wall time a datetime-local input holds in this browser's zone.
  const localInput = (iso) => {
    const d = new Date(iso);
    return new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
  };

  function fillDeadline(form) {
    if (form.dataset.deadline) form.elements.deadline.value = localInput(form.dataset.deadline);
  }

  function submitDeadline(form) {
    const value = (new FormData(form).get('deadline') || '').trim();
    const deadline = value ? new Date(value).toISOString() : null;
    submitForm(
      form,
      () => api('PATCH', regressionUrl(form.dataset.regression), { spec: { deadline } }),
      () => {
        toast(deadline ? 'Deadline moved' : 'Deadline removed');
        scheduleRefresh();
      },
    );
  }

  // ---------------------------------------------------------------- mute form
  // A failing test's mute: `expires` is a number of days from now; the signature only when
  // asked ("only this failure").
  function muteSpec(form) {
    const f = new FormData(form);
    const days = Number(f.get('expires') || 0);
    const spec = {
      service: form.dataset.service,
      test: form.dataset.test,
      reason: (f.get('reason') || '').trim(),
      expires: new Date(Date.now() + days * 86400000).toISOString(),
      liftWhenTicketClosed: f.get('liftWhenTicketClosed') === 'on',
    };
    const ticket = (f.get('ticket') || '').trim();
    if (ticket) spec.ticket = ticket;
    if (f.get('signatureOnly') === 'on' && form.dataset.signature) spec.signature = form.dataset.signature;
    return spec;
  }

  function submitMute(form) {
    submitForm(
      form,
      () => api('POST', '/api/v1/mutes', { spec: muteSpec(form) }),
      (res) => { toast('Muted as ' + created(res) + ': counts from the next attempt that ends'); scheduleRefresh(); },
    );
  }

  // ---------------------------------------------------------------- buttons
  async function act(fn, done) {
    try {
      const res = await fn();
      if (!res.ok) { toast(failure(res), 'error'); return; }
      if (done) done(res); else toast('Done');
      scheduleRefresh();
    } catch (e) {
      if (!(e instanceof Cancelled)) toast('Could not reach the server: ' + e.message, 'error');
    }
  }

  const runUrl = (id) => '/api/v1/runs/' + encodeURIComponent(id);

  document.addEventListener('click', (e) => {
    const el = e.target.closest('[data-action]');
    if (!el || el.tagName === 'SELECT') return;
    const action = el.dataset.action;
    if (action === 'cancel') {
      const id = el.dataset.run;
      if (!confirm('Cancel run ' + id + '?')) return;
      act(() => api('DELETE', runUrl(id)), () => toast('Cancelling ' + id));
    } else if (action === 'token') {
      askToken('Enter the API token to use for changes.', false).then((t) => {
        if (t) { storeToken(t); toast('Token stored in this browser'); }
      });
    } else if (action === 'schedule-suspend') {
      const suspend = el.dataset.suspend === 'true';
      act(
        () => api('PATCH', scheduleUrl(el.dataset.schedule), { spec: { suspend } }),
        () => toast((suspend ? 'Suspended ' : 'Resumed ') + el.dataset.schedule),
      );
    } else if (action === 'schedule-trigger') {
      act(
        () => api('POST', scheduleUrl(el.dataset.schedule) + '/trigger'),
        (res) => location.assign('/runs/' + encodeURIComponent(res.data.runId)),
      );
    } else if (action === 'regression-delete') {
      const name = el.dataset.regression;
      if (!confirm('Delete regression ' + name + '? Its test run in test management is stopped.')) return;
      act(
        () => api('DELETE', regressionUrl(name)),
        () => toast('Deleting ' + name),
      );
    } else if (action === 'stand-resume') {
      const stand = el.dataset.stand;
      if (!confirm('Resume stand ' + stand + '? The runs waiting for it start.')) return;
      act(
        () => api('POST', '/api/v1/stands/' + encodeURIComponent(stand) + '/resume'),
        () => toast('Resumed ' + stand),
      );
    } else if (action === 'unmute') {
      const name = el.dataset.mute;
      if (!confirm('Unmute (delete mute ' + name + ')? The failure counts again from the next attempt that ends.')) return;
      act(() => api('DELETE', '/api/v1/mutes/' + encodeURIComponent(name)), () => toast('Unmuted ' + name));
    } else if (action === 'schedule-delete') {
      const name = el.dataset.schedule;
      if (!confirm('Delete schedule ' + name + '? Its runs stay in history.')) return;
      act(() => api('DELETE', scheduleUrl(name)), () => toast('Deleted ' + name));
    }
  });

  document.addEventListener('change', (e) => {
    const el = e.target;
    if (el.matches('form[data-form="schedule"] select[name="service"], form[data-form="regression"] select[name="service"]')) {
      showServiceChoices(el.form);
      return;
    }
    if (el.matches('select[data-action="priority"]')) {
      const id = el.dataset.run;
      // Chosen: the list is no longer in use, so live updates of its part resume.
      el.blur();
      act(
        () => api('PATCH', runUrl(id), { spec: { priority: Number(el.value) } }),
        () => toast('Priority of ' + id + ' is now ' + el.value),
      );
    } else if (el.matches('select[data-autosubmit]')) {
      el.form.submit();
    }
  });

  document.addEventListener('submit', (e) => {
    const form = e.target;
    if (form.matches('form[data-form="run"]')) {
      e.preventDefault();
      submitRun(form);
    } else if (form.matches('form[data-form="schedule"]')) {
      e.preventDefault();
      submitSchedule(form);
    } else if (form.matches('form[data-form="regression"]')) {
      e.preventDefault();
      submitRegression(form);
    } else if (form.matches('form[data-form="deadline"]')) {
      e.preventDefault();
      submitDeadline(form);
    } else if (form.matches('form[data-form="mute"]')) {
      e.preventDefault();
      submitMute(form);
    }
  });

  // ---------------------------------------------------------------- copy
  // A button with data-copy="#id" copies that element's text (a proposed rule).
  document.addEventListener('click', async (e) => {
    const button = e.target.closest?.('button[data-copy]');
    if (!button) return;
    const source = document.querySelector(button.dataset.copy);
    if (!source) return;
    try {
      await navigator.clipboard.writeText(source.textContent);
      toast('Copied');
    } catch (_) {
      // No clipboard (an insecure origin): select the text for Ctrl-C instead.
      const range = document.createRange();
      range.selectNodeContents(source);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      toast('Selected: press Ctrl-C to copy');
    }
  });

  // ---------------------------------------------------------------- start
  document.getElementById('token-forget')?.addEventListener('click', () => {
    storeToken('');
    toast('Stored token forgotten');
  });
  observeTimes();
  for (const form of document.querySelectorAll('form[data-form="schedule"], form[data-form="regression"]')) showServiceChoices(form);
  for (const form of document.querySelectorAll('form[data-form="deadline"]')) fillDeadline(form);
  tick();
  setInterval(tick, 1000);
  followLog();
  connect();
})();
