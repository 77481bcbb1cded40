// The client's view: account, submit form, own jobs with cursor paging, the open job followed live through
// its event stream (its timeline, then its receipt and provenance), output downloads, spending and the ledger.
import { api, optional, readEvents, download, ApiError } from './api.js';
import { loadKernels } from './catalogue.js';
import { drawChart } from './charts.js';
import { showReceipt, hideReceipt } from './receipt.js';
import { $, el, setText, shortId, formatCredits, formatJoules, formatSignificant, formatTime } from './ui.js';

const TERMINAL = new Set(['completed', 'failed', 'cancelled', 'rejected']);
const REFRESH_MS = 5000;
const PAGE = 20;

let report = () => {};
let timer = null;
let generation = 0;
// Cursor paging goes one way (older); the cursors of the pages seen so far lead back to the newest.
let page = { cursor: null, next: null };
let openJob = null; // { id, controller, createdAt, changes: the status changes seen so far }
let pending = null; // an Idempotency-Key whose submission never got an answer, with the body it was for
let kernels = []; // the catalogue, once GET /v1/kernels answered

export function initClient(reportError) {
  report = reportError;
  $('#job-kernel').addEventListener('change', renderKernel);
  $('#submit-job').addEventListener('submit', submit);
  $('#low-balance-form').addEventListener('submit', event => {
    event.preventDefault();
    const value = $('#low-balance-threshold').value.trim();
    setLowBalance(value === '' ? null : Number(value));
  });
  $('#low-balance-clear').addEventListener('click', () => setLowBalance(null));
  $('#webhook-form').addEventListener('submit', event => {
    event.preventDefault();
    setWebhook($('#webhook-url').value.trim());
  });
  $('#webhook-clear').addEventListener('click', () => setWebhook(null));  // only Remove removes: an empty URL is not sent
  $('#jobs-newest').addEventListener('click', () => loadJobs(null).catch(report));
  $('#jobs-older').addEventListener('click', () => loadJobs(page.next).catch(report));
}

// The submit form's kernels come from the network; until they have, the form has none to offer.
async function showKernels() {
  if (kernels.length) return;
  kernels = await loadKernels();
  const select = $('#job-kernel');
  select.replaceChildren(...kernels.map(k => el('option', { value: k.name }, k.name)));
  renderKernel();
}

export function showClient() {
  showKernels().catch(report);
  if (timer) return;
  const mine = ++generation;
  const tick = async () => {
    try {
      await Promise.all([loadAccount(), page.cursor === null ? loadJobs(null) : null, loadLedger(), loadSpending()]);
    } catch (error) {
      report(error);
    }
    if (mine === generation) timer = setTimeout(tick, REFRESH_MS);
  };
  timer = setTimeout(tick, 0);
}

export function hideClient() {
  generation++;
  clearTimeout(timer);
  timer = null;
}

/** Forgets everything of the signed-in user (on sign-out). */
export function resetClient() {
  hideClient();
  closeJob();
  page = { cursor: null, next: null };
  pending = null;
  $('#jobs tbody').replaceChildren();
  $('#ledger tbody').replaceChildren();
  window.Chart.getChart($('#chart-spending canvas'))?.destroy();
  window.Chart.getChart($('#chart-timeline canvas'))?.destroy();
  hideReceipt();
  $('#provenance-chain').replaceChildren();
  $('#receipt-facts').replaceChildren();
  $('#job-detail').hidden = true;
  $('#low-balance-banner').hidden = true;
  $('#webhook-secret').hidden = true;
  setText('#webhook-secret', '');
  setText('#submit-status', '');
  setText('#low-balance-status', '');
  setText('#webhook-status', '');
}

function renderKernel() {
  const kernel = kernels.find(k => k.name === $('#job-kernel').value);
  if (!kernel) return;
  setText('#job-kernel-help', `${kernel.description}; ${kernel.shapes}`);
  const fieldset = $('#job-inputs');
  fieldset.replaceChildren(fieldset.querySelector('legend'), ...kernel.inputs.map(name => el('div', { class: 'input-row', dataset: { input: name } },
    el('label', { for: `input-${name}-cid` }, el('code', {}, name), ' CID'),
    el('input', { id: `input-${name}-cid`, type: 'text', spellcheck: 'false', placeholder: 'bafkrei…', autocomplete: 'off' }),
    el('label', { for: `input-${name}-file` }, 'or file'),
    el('input', { id: `input-${name}-file`, type: 'file', accept: '.npy' }))));
  const params = $('#job-params');
  params.value = '';
  params.placeholder = kernel.params.length ? kernel.params.map(p => `${p.name}=${p.default}`).join('\n') : 'this kernel takes no parameters';
  params.title = kernel.params.map(p => `${p.name}: ${p.description}`).join('\n');
}

function parseParams(text) {
  const params = {};
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const eq = line.indexOf('=');
    if (eq <= 0) throw new ApiError(400, { detail: `Parameter line ${i + 1} ("${line}") is not key=value.` });
    params[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
  });
  return params;
}

function newKey() {
  // crypto.randomUUID needs a secure context; a gateway reached over plain http elsewhere than localhost is not one.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, b => b.toString(16).padStart(2, '0')).join('');
}

async function submit(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const button = form.querySelector('button[type="submit"]');
  button.disabled = true;
  try {
    const kernel = $('#job-kernel').value;
    const inputs = {};
    for (const row of form.querySelectorAll('[data-input]')) {
      const name = row.dataset.input;
      const cidField = $(`#input-${name}-cid`);
      const file = $(`#input-${name}-file`).files[0];
      if (file) {
        setText('#submit-status', `Pinning ${file.name} for ${name}…`);
        const pinned = await api('/v1/blobs', { method: 'POST', body: file });
        cidField.value = pinned.cid;
        $(`#input-${name}-file`).value = '';
      }
      inputs[name] = cidField.value.trim();
    }
    const body = { kernel, inputs, params: parseParams($('#job-params').value), replicas: Number($('#job-replicas').value || 1) };
    const maxPrice = $('#job-max-price').value;
    if (maxPrice !== '') body.maxPrice = Number(maxPrice);

    // The key makes a retry after a lost answer safe: the gateway answers it with the job it already made.
    const text = JSON.stringify(body);
    if (!pending || pending.body !== text) pending = { key: newKey(), body: text };
    setText('#submit-status', 'Submitting…');
    let job;
    try {
      job = await api('/v1/jobs', { method: 'POST', body, headers: { 'Idempotency-Key': pending.key } });
      pending = null;
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 0)) pending = null;
      throw error;
    }
    setText('#submit-status', `Submitted ${job.id}.`);
    await loadJobs(null);
    showJob(job);
  } catch (error) {
    setText('#submit-status', 'Not submitted.');
    report(error);
  } finally {
    button.disabled = false;
  }
}

async function loadAccount() {
  showAccount(await api('/v1/account'));
}

function showAccount(account) {
  setText('[data-account="balance"]', formatCredits(account.balance));
  setText('[data-account="escrowed"]', formatCredits(account.escrowed));
  setText('[data-account="threshold"]', account.lowBalanceThreshold == null ? 'not set' : formatCredits(account.lowBalanceThreshold));
  // The host is enough to recognise it; the whole URL is its title.
  const webhook = $('[data-account="webhook"]');
  setText('[data-account="webhook"]', account.webhookUrl ? new URL(account.webhookUrl).host : 'none');
  webhook.title = account.webhookUrl ?? '';
  const banner = $('#low-balance-banner');
  banner.hidden = !account.lowBalance;
  banner.textContent = account.lowBalance
    ? `Your balance ${formatCredits(account.balance)} is below your warning threshold of ${formatCredits(account.lowBalanceThreshold)}: ` +
      'top up or lower the threshold before jobs are rejected for insufficient credits'
    : '';
}

// PUT is idempotent: a retry after a lost answer sets the same threshold again.
async function setLowBalance(threshold) {
  const form = $('#low-balance-form');
  form.querySelectorAll('button').forEach(b => { b.disabled = true; });
  try {
    const account = await api('/v1/account/low-balance', { method: 'PUT', body: { threshold } });
    showAccount(account);
    $('#low-balance-threshold').value = '';
    setText('#low-balance-status', threshold == null ? 'Warning cleared.' : `Warning set below ${formatCredits(threshold)}.`);
  } catch (error) {
    setText('#low-balance-status', '');
    report(error);
  } finally {
    form.querySelectorAll('button').forEach(b => { b.disabled = false; });
  }
}

// Sets (url) or removes (null) the account's webhook. The signing secret is in the PUT's answer only: shown here
// once, for the user to copy into the receiver.
async function setWebhook(url) {
  const form = $('#webhook-form');
  form.querySelectorAll('button').forEach(b => { b.disabled = true; });
  try {
    if (url !== null) {
      const hook = await api('/v1/account/webhook', { method: 'PUT', body: { url } });
      $('#webhook-url').value = '';
      setText('#webhook-secret', `Signing secret, shown this once (verify each delivery's webhook-signature with it): ${hook.secret}`);
      $('#webhook-secret').hidden = false;
      setText('#webhook-status', `Warnings go to ${hook.url}.`);
    } else {
      await api('/v1/account/webhook', { method: 'DELETE' });
      $('#webhook-secret').hidden = true;
      setText('#webhook-status', 'Webhook removed.');
    }
    showAccount(await api('/v1/account'));
  } catch (error) {
    setText('#webhook-status', '');
    report(error);
  } finally {
    form.querySelectorAll('button').forEach(b => { b.disabled = false; });
  }
}

async function loadJobs(cursor) {
  const query = new URLSearchParams({ limit: String(PAGE) });
  if (cursor) query.set('cursor', cursor);
  const list = await api(`/v1/jobs?${query}`);
  page = { cursor, next: list.nextCursor };
  const rows = list.items.map(jobRow);
  if (rows.length === 0) rows.push(el('tr', {}, el('td', { colspan: 6, class: 'muted' }, 'No jobs yet: submit one above.')));
  $('#jobs tbody').replaceChildren(...rows);
  $('#jobs-newest').disabled = cursor === null;
  $('#jobs-older').disabled = !list.nextCursor;
}

function jobRow(job) {
  const open = el('a', { href: `#client/${job.id}`, onclick: e => { e.preventDefault(); openById(job.id); } }, shortId(job.id));
  return el('tr', { dataset: { job: job.id } },
    el('td', {}, open),
    el('td', {}, job.kernel),
    el('td', {}, statusBadge(job.status, job.statusReason)),
    el('td', {}, formatCredits(job.cost)),
    el('td', { dataset: { energy: job.energy ? (job.energy.estimated ? 'estimated' : 'measured') : '' } }, describeJobEnergy(job.energy)),
    el('td', {}, formatTime(job.createdAt)));
}

/**
 * A job's energy: joules of its accepted attempts (replicas and spot checks included), whether a sensor measured
 * them, and per GFLOP. A dash until an attempt is accepted.
 */
function describeJobEnergy(energy) {
  if (!energy) return '–';
  const joules = `${formatJoules(energy.joules)} (${energy.estimated ? 'estimated' : 'measured'})`;
  return energy.joulesPerGflop == null ? joules : `${joules}, ${formatSignificant(energy.joulesPerGflop)} J/GFLOP`;
}

/** The status; a job that ended says why (the sentence on hover, and in plain sight unless it completed). */
function statusBadge(status, reason) {
  const badge = el('span', { class: `status status-${status}`, dataset: { status }, title: reason?.message }, status);
  if (!reason || status === 'completed') return badge;
  return el('span', {}, badge, ' ', el('small', { class: 'muted reason', dataset: { reason: reason.code } }, reason.message));
}

async function loadLedger() {
  const ledger = await optional('/v1/account/ledger?limit=50');
  const note = $('#ledger-note');
  if (ledger === null) {
    note.hidden = false;
    note.textContent = 'This gateway does not serve the ledger (GET /v1/account/ledger) yet.';
    $('#ledger').hidden = true;
    return;
  }
  const entries = Array.isArray(ledger) ? ledger : ledger.entries || ledger.items || [];
  note.hidden = entries.length > 0;
  note.textContent = 'No ledger entries yet.';
  $('#ledger').hidden = entries.length === 0;
  $('#ledger tbody').replaceChildren(...entries.map(e => el('tr', { dataset: e.jobId ? { job: e.jobId } : {} },
    el('td', {}, formatTime(e.createdAt)),
    el('td', {}, e.kind),
    el('td', { class: e.amount < 0 ? 'num negative' : 'num' }, formatCredits(e.amount)),
    el('td', {}, shortId(e.jobId)),
    el('td', {}, shortId(e.workerId)))));
}

// Net credits per day, oldest first: a bar a day of the last 90 with any spending.
async function loadSpending() {
  const spending = await optional('/v1/account/spending');
  const days = (spending?.days || []).slice().sort((a, b) => String(a.date).localeCompare(String(b.date)));
  drawChart($('#chart-spending'), {
    type: 'bar', labels: days.map(d => d.date), format: formatCredits,
    empty: spending === null ? 'This gateway does not serve spending (GET /v1/account/spending) yet.' : 'Nothing spent yet.',
    series: [{ label: 'spent', data: days.map(d => d.spent) }],
  });
}

async function openById(id) {
  try {
    showJob(await api(`/v1/jobs/${encodeURIComponent(id)}`));
  } catch (error) {
    report(error);
  }
}

function closeJob() {
  openJob?.controller.abort();
  openJob = null;
}

/**
 * Shows a job and reads its event stream: a live job's until it ends, a finished job's whole log (the stream
 * replays it and closes), so both get their timeline; a completed one then its receipt.
 */
function showJob(job) {
  closeJob();
  const controller = new AbortController();
  openJob = { id: job.id, controller, createdAt: job.createdAt, changes: [] };
  $('#job-detail').hidden = false;
  setText('#job-id', job.id);
  setText('#job-kernel-name', job.kernel);
  setText('#job-created', formatTime(job.createdAt));
  $('#job-events').replaceChildren();
  hideReceipt();
  renderTimeline();
  renderJob(job);
  follow(job.id, controller.signal, !TERMINAL.has(job.status)).catch(error => {
    if (error.name !== 'AbortError') report(error);
  });
}

/**
 * The job's timeline: a bar per stretch between two status changes (queued, assigned to a worker, running...),
 * in seconds since submission; the last change, the end, has no stretch after it.
 */
function renderTimeline() {
  const job = openJob;
  const start = Date.parse(job.createdAt);
  const changes = job.changes;
  const stretches = changes.slice(0, -1).map((c, i) => ({
    label: c.workerId ? `${c.status} (${c.workerId.length > 14 ? `${c.workerId.slice(0, 10)}…` : c.workerId})` : c.status,
    span: [(Date.parse(c.occurredAt) - start) / 1000, (Date.parse(changes[i + 1].occurredAt) - start) / 1000],
  }));
  drawChart($('#chart-timeline'), {
    type: 'bar', horizontal: true, floating: true, labels: stretches.map(s => s.label), format: v => `${formatSignificant(v)} s`,
    series: [{ label: 'seconds since submission', data: stretches.map(s => s.span) }],
    empty: changes.length ? `${changes[0].status} since ${formatTime(changes[0].occurredAt)}` : 'no status change yet',
  });
}

function renderJob(job) {
  setStatus(job.status);
  setText('#job-cost', formatCredits(job.cost));
  const energy = $('#job-energy');
  energy.textContent = describeJobEnergy(job.energy);
  energy.dataset.energy = job.energy ? (job.energy.estimated ? 'estimated' : 'measured') : '';
  setText('#job-completed', formatTime(job.completedAt));
  // Why the job ended, completed included; older gateways only sent `error`.
  const reason = job.statusReason ?? (job.error ? { code: job.error.reason, message: job.error.detail } : null);
  const error = $('#job-error');
  error.hidden = !reason;
  error.className = reason && job.status !== 'completed' ? 'error' : 'muted';
  error.dataset.reason = reason?.code ?? '';
  error.textContent = reason ? `${reason.message} (${reason.code})` : '';
  const progress = $('#job-progress');
  progress.hidden = job.progress == null || TERMINAL.has(job.status);
  if (job.progress != null) progress.value = job.progress;
  const outputs = Object.entries(job.outputs || {});
  $('#job-outputs').replaceChildren(...(outputs.length === 0
    ? [el('li', { class: 'muted' }, TERMINAL.has(job.status) ? 'none' : 'none yet')]
    : outputs.map(([name, cid]) => el('li', {},
      el('a', {
        href: `/v1/blobs/${cid}`,
        class: 'output',
        dataset: { output: name },
        onclick: e => {
          e.preventDefault();
          download(cid, `${job.id}-${name}.npy`).catch(report);
        },
      }, `Download ${name}`),
      ' ', el('code', { class: 'cid' }, cid)))));
}

function setStatus(status) {
  const node = $('#job-status');
  node.textContent = status;
  node.dataset.status = status;
  node.className = `status status-${status}`;
}

/**
 * Follows the job's events, resuming after the last one seen if the connection drops. `live`: the job had not
 * ended when it was opened, so its end changes the account, list and ledger too.
 */
async function follow(id, signal, live) {
  let last = null;
  let failures = 0;
  let finished = false;
  while (!finished && !signal.aborted) {
    try {
      await readEvents(`/v1/jobs/${encodeURIComponent(id)}/events`, {
        signal,
        lastEventId: last,
        onEvent: ({ id: eventId, type, data }) => {
          failures = 0;
          const payload = JSON.parse(data);
          if (type === 'status') {
            last = eventId ?? last;
            onStatus(payload);
            if (TERMINAL.has(payload.status)) finished = true;
          } else if (type === 'progress') {
            const progress = $('#job-progress');
            progress.hidden = false;
            progress.value = payload.fraction;
          }
        },
      });
    } catch (error) {
      if (error.name === 'AbortError' || (error instanceof ApiError && error.status >= 400 && error.status < 500)) throw error;
      failures++;
    }
    if (!finished && !signal.aborted) {
      // The stream ended before the job did (a restart, a proxy timeout): reconnect, backing off if it keeps failing.
      await new Promise(resolve => setTimeout(resolve, Math.min(1000 * 2 ** failures, 15000)));
    }
  }
  if (finished && !signal.aborted) {
    if (live) await showFinalRecord(id, signal);
    if ($('#job-status').dataset.status === 'completed') await showReceipt(id, signal);
    if (live) await Promise.all([loadAccount(), page.cursor === null ? loadJobs(null) : null, loadLedger(), loadSpending()]);
  }
}

/**
 * The final record (outputs, cost, error). The event stream reads the job's change log, which the job record
 * may trail by a moment: until the record has finished too, ask again, and never show its older status.
 */
async function showFinalRecord(id, signal) {
  const ended = $('#job-status').dataset.status;
  for (let attempt = 1; attempt <= 20; attempt++) {
    const job = await api(`/v1/jobs/${encodeURIComponent(id)}`, { signal });
    if (TERMINAL.has(job.status) || attempt === 20) {
      renderJob({ ...job, status: ended });
      return;
    }
    await new Promise(resolve => setTimeout(resolve, Math.min(100 * attempt, 1000)));
  }
}

function onStatus(change) {
  if (openJob?.id === change.jobId) {
    openJob.changes.push(change);
    renderTimeline();
  }
  setStatus(change.status);
  if (TERMINAL.has(change.status)) $('#job-progress').hidden = true;
  const who = change.workerId ? ` on ${change.workerId}` : '';
  const attempt = change.attemptStatus ? ` (attempt ${change.attemptStatus})` : '';
  const why = change.message ? `${change.message}${change.reason ? ` (${change.reason})` : ''}` : [change.reason, change.detail].filter(Boolean).join(': ');
  $('#job-events').append(el('li', { dataset: { status: change.status } },
    el('time', { datetime: change.occurredAt }, new Date(change.occurredAt).toLocaleTimeString()), ' ',
    el('strong', {}, change.status), who, attempt, why ? ` — ${why}` : ''));
  // The row in the list follows too, without waiting for the next refresh.
  const cell = document.querySelector(`#jobs tr[data-job="${CSS.escape(change.jobId)}"] td:nth-child(3)`);
  cell?.replaceChildren(statusBadge(change.status, change.message ? { code: change.reason, message: change.message } : null));
}
