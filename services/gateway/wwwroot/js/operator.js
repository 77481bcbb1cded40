// The operator's view: own nodes (the public worker list filtered by the account), stake, earnings, and for each
// node why it gets work or not (GET /v1/workers/{id}/placement) with what to do about it.
import { api, optional } from './api.js';
import { drawChart, timeLabel } from './charts.js';
import { describeDevices, energyCell, onlineBadge } from './network.js';
import { $, el, poller, setText, shortId, formatCredits, formatNumber, formatPercent, formatSignificant, formatTime } from './ui.js';

const REFRESH_MS = 5000;

let report = () => {};

export function initOperator(reportError) {
  report = reportError;
}

const refreshing = poller(refresh, REFRESH_MS);

export function showOperator() {
  refreshing.start(report);
}

export function hideOperator() {
  refreshing.stop();
}

export function resetOperator() {
  hideOperator();
  $('#nodes tbody').replaceChildren();
  $('#placements').replaceChildren();
  for (const id of ['#chart-earnings', '#chart-node-speed', '#chart-node-energy']) window.Chart.getChart($(`${id} canvas`))?.destroy();
}

async function refresh() {
  const [account, workers, earnings] = await Promise.all([api('/v1/account'), api('/v1/workers'), optional('/v1/account/earnings')]);
  const mine = workers.filter(w => w.operatorAccountId === account.accountId);
  // One call per node: an operator runs a handful. A gateway without the route leaves the panel out.
  const [placements, histories] = await Promise.all([
    Promise.all(mine.map(w => optional(`/v1/workers/${encodeURIComponent(w.workerId)}/placement`))),
    Promise.all(mine.map(w => optional(`/v1/workers/${encodeURIComponent(w.workerId)}/history`)))]);
  const perWorker = new Map((earnings?.workers || []).map(w => [w.workerId, w]));

  setText('[data-operator="staked"]', formatCredits(account.staked));
  setText('[data-operator="balance"]', formatCredits(account.balance));
  setText('[data-operator="earned"]', formatCredits(account.earned));
  setText('[data-operator="jobs"]', earnings ? formatNumber(sum(earnings.workers, w => w.jobs)) : '–');
  // The API reports each node's power draw, not the energy its jobs used: the draw of the online nodes is what there is.
  setText('[data-operator="power"]', `${formatNumber(sum(mine.filter(w => w.online), w => w.powerWatts))} W`);

  const stakeNote = $('#stake-note');
  stakeNote.hidden = account.staked > 0;
  stakeNote.textContent = 'Nothing is staked: the network gives work only to nodes whose operator has staked (POST /v1/account/stake).';

  const rows = mine.map(w => {
    const earned = perWorker.get(w.workerId);
    return el('tr', { dataset: { worker: w.workerId } },
      el('td', {}, shortId(w.workerId)),
      el('td', {}, onlineBadge(w.online)),
      el('td', {}, w.region),
      el('td', {}, describeDevices(w.devices)),
      el('td', {}, `${w.active} / ${w.slots}`),
      el('td', {}, formatNumber(w.reputation)),
      el('td', {}, formatCredits(w.operatorStake)),
      el('td', {}, `${formatNumber(w.powerWatts)} W${w.powerMeasured ? '' : ' (estimated)'}`),
      energyCell(w.energy),
      el('td', {}, earned ? formatNumber(earned.jobs) : '–'),
      el('td', {}, earned ? formatCredits((earned.paid || 0) + (earned.minted || 0)) : '–'),
      el('td', {}, (w.notes || []).join(' ') || '–'));
  });
  if (rows.length === 0) rows.push(el('tr', {}, el('td', { colspan: 12, class: 'muted' }, 'No node runs under this account yet: start a worker with its key.')));
  $('#nodes tbody').replaceChildren(...rows);
  $('#placements').replaceChildren(...mine.map((w, i) => placementCard(w, placements[i])).filter(Boolean));
  showNodeHistories(histories.filter(Boolean));

  const note = $('#earnings-note');
  if (earnings === null) {
    note.hidden = false;
    note.textContent = 'This gateway does not serve earnings (GET /v1/account/earnings) yet.';
    drawChart($('#chart-earnings'), { type: 'bar', labels: [], series: [], empty: 'not available' });
    return;
  }
  note.hidden = true;
  const days = (earnings.days || []).slice().sort((a, b) => String(a.date).localeCompare(String(b.date)));
  drawChart($('#chart-earnings'), {
    type: 'bar', stacked: true, labels: days.map(d => d.date), format: formatCredits, empty: 'nothing earned yet',
    series: [{ label: 'paid', data: days.map(d => d.paid || 0) }, { label: 'minted', data: days.map(d => d.minted || 0) }],
  });
}

/**
 * Each node's measured speed (one line per node and kernel) and the J/GFLOP of its accepted work, over the
 * scheduler's samples of the last hour. The nodes' samples share instants (every scheduler samples on the same
 * boundaries), so one axis of times serves them all.
 */
function showNodeHistories(histories) {
  const interval = histories[0]?.intervalSeconds ?? 60;
  const times = [...new Set(histories.flatMap(h => h.samples.map(s => s.at)))].sort();
  const labels = times.map(at => timeLabel(at, interval));
  const at = history => new Map(history.samples.map(s => [s.at, s]));
  const speed = histories.flatMap(h => {
    const byTime = at(h);
    const kernels = [...new Set(h.samples.flatMap(s => Object.keys(s.gflopsPerKernel || {})))].sort();
    return kernels.map(k => ({ label: `${nodeName(h.workerId)} ${k}`, data: times.map(t => byTime.get(t)?.gflopsPerKernel?.[k] ?? null) }));
  });
  drawChart($('#chart-node-speed'), { labels, series: speed, format: formatSignificant, empty: 'No speed measured yet: the network measures a node from its accepted results.' });
  const energy = histories.map(h => {
    const byTime = at(h);
    return { label: nodeName(h.workerId), data: times.map(t => byTime.get(t)?.joulesPerGflop ?? null) };
  });
  drawChart($('#chart-node-energy'), { labels, series: energy, format: formatSignificant, empty: 'No accepted work with checked energy in the last hour.' });
}

const nodeName = id => (id.length > 14 ? `${id.slice(0, 10)}…` : id);

function sum(items, value) {
  return (items || []).reduce((total, item) => total + (value(item) || 0), 0);
}

/**
 * One node's placement: the status sentence (a warning when it gets no work), the reasons recent jobs went
 * elsewhere with the fix for each, and its trust per kernel.
 */
function placementCard(worker, placement) {
  if (!placement) return null;
  const status = el('p', { class: placement.getsWork ? 'placement-status ok' : 'placement-status warning',
    dataset: { getsWork: String(placement.getsWork) } }, placement.status);
  const reasons = (placement.reasons || []).filter(r => r.code !== 'chosen');
  const chosen = (placement.reasons || []).find(r => r.code === 'chosen');
  const lastPlaced = placement.recent?.[0]?.at;
  return el('article', { class: 'card placement', dataset: { worker: worker.workerId } },
    el('h4', {}, 'Node ', shortId(worker.workerId), ' ', el('span', { class: placement.getsWork ? 'badge ok' : 'badge off' }, placement.getsWork ? 'gets work' : 'gets no work')),
    status,
    el('p', { class: 'muted' }, (placement.recent || []).length === 0
      ? 'No job has been placed while it was online.'
      : `Chosen for ${formatNumber(chosen?.count ?? 0)} of its last ${formatNumber(placement.recent.length)} placements; the latest at ${formatTime(lastPlaced)}.`),
    reasons.length === 0 ? null : el('div', { class: 'scroll' }, el('table', { class: 'reasons' },
      el('caption', {}, 'Why recent jobs went elsewhere'),
      el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Reason'), el('th', { scope: 'col' }, 'Times'), el('th', { scope: 'col' }, 'What to do'))),
      el('tbody', {}, reasons.map(r => el('tr', { dataset: { reason: r.code } },
        el('td', {}, r.message, ' ', el('small', { class: 'muted' }, `(${r.code})`)),
        el('td', { class: 'num' }, formatNumber(r.count)),
        el('td', { class: 'fix' }, r.fix ? fixText(r.fix) : '–')))))),
    (placement.trust || []).length === 0 ? null : el('div', { class: 'scroll' }, el('table', { class: 'trust' },
      el('caption', {}, 'Trust per kernel: the longer its run of accepted results, the rarer the spot checks'),
      el('thead', {}, el('tr', {}, ...['Kernel', 'Accepted in a row', 'Chance the next result is checked', 'Checked', 'Mismatches']
        .map(h => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, placement.trust.map(t => el('tr', { dataset: { kernel: t.kernel } },
        el('td', {}, t.kernel),
        el('td', { class: 'num' }, formatNumber(t.streak)),
        el('td', { class: 'num' }, formatPercent(t.checkProbability)),
        el('td', { class: 'num' }, formatNumber(t.checked)),
        el('td', { class: t.mismatches > 0 ? 'num negative' : 'num' }, formatNumber(t.mismatches))))))));
}

// A fix often ends in a command ("Stake 10 more credits: ./platform account stake 10"): set it as code to copy.
function fixText(fix) {
  const at = fix.indexOf('./platform ');
  if (at < 0) return fix;
  return [fix.slice(0, at), el('code', {}, fix.slice(at))];
}
