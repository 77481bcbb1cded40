// The operator's view: own nodes (the public worker list filtered by the account), stake, earnings.
import { api, optional } from './api.js';
import { describeDevices, onlineBadge } from './network.js';
import { $, el, bars, poller, setText, shortId, formatCredits, formatNumber } from './ui.js';

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
  $('#chart-earnings').replaceChildren();
}

async function refresh() {
  const [account, workers, earnings] = await Promise.all([api('/v1/account'), api('/v1/workers'), optional('/v1/account/earnings')]);
  const mine = workers.filter(w => w.operatorAccountId === account.accountId);
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
      el('td', {}, earned ? formatNumber(earned.jobs) : '–'),
      el('td', {}, earned ? formatCredits((earned.paid || 0) + (earned.minted || 0)) : '–'),
      el('td', {}, (w.notes || []).join(' ') || '–'));
  });
  if (rows.length === 0) rows.push(el('tr', {}, el('td', { colspan: 11, class: 'muted' }, 'No node runs under this account yet: start a worker with its key.')));
  $('#nodes tbody').replaceChildren(...rows);

  const note = $('#earnings-note');
  if (earnings === null) {
    note.hidden = false;
    note.textContent = 'This gateway does not serve earnings (GET /v1/account/earnings) yet.';
    bars($('#chart-earnings'), [], { empty: 'not available' });
    return;
  }
  note.hidden = true;
  const days = (earnings.days || []).slice().sort((a, b) => String(a.date).localeCompare(String(b.date)));
  bars($('#chart-earnings'), days.map(d => [d.date, [d.paid || 0, d.minted || 0]]), { format: formatCredits, empty: 'nothing earned yet' });
}

function sum(items, value) {
  return (items || []).reduce((total, item) => total + (value(item) || 0), 0);
}
