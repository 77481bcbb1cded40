// The public network view: GET /v1/network and GET /v1/workers, refreshed every few seconds while shown.
import { api } from './api.js';
import { $, el, bars, poller, sparkline, setText, shortId, formatBytes, formatCredits, formatNumber, formatPercent } from './ui.js';

const REFRESH_MS = 4000;
const SAMPLES = 90; // six minutes of history at one sample per refresh

const jobsPerMinute = [];
const load = [];
const refreshing = poller(refresh, REFRESH_MS);

export function showNetwork(report) {
  refreshing.start(report);
}

export function hideNetwork() {
  refreshing.stop();
}

async function refresh() {
  const [network, workers] = await Promise.all([api('/v1/network'), api('/v1/workers')]);
  setText('[data-stat="workersOnline"]', formatNumber(network.workersOnline));
  setText('[data-stat="workersOffline"]', formatNumber(network.workersOffline));
  setText('[data-stat="load"]', formatPercent(network.load));
  setText('[data-stat="slots"]', `${formatNumber(network.activeAttempts)} / ${formatNumber(network.slots)}`);
  setText('[data-stat="jobsQueued"]', formatNumber(network.jobsQueued));
  setText('[data-stat="jobsPerMinute"]', formatNumber(network.jobsPerMinute));
  setText('[data-stat="creditsMinted"]', formatCredits(network.creditsMinted));
  setText('[data-stat="bytesPinned"]', formatBytes(network.bytesPinned));
  setText('[data-stat="blobsPinned"]', formatNumber(network.blobsPinned));
  setText('#network-updated', `updated ${new Date().toLocaleTimeString()}`);

  bars($('#chart-regions'), Object.entries(network.regions || {}), { empty: 'no node online' });
  bars($('#chart-devices'), Object.entries(network.devices || {}), { empty: 'no node online' });
  push(jobsPerMinute, network.jobsPerMinute);
  push(load, network.load);
  sparkline($('#chart-jobs'), jobsPerMinute, { label: 'jobs per minute' });
  sparkline($('#chart-load'), load, { label: 'load', format: formatPercent });

  $('#workers tbody').replaceChildren(...workers.map(workerRow));
  if (workers.length === 0) $('#workers tbody').append(el('tr', {}, el('td', { colspan: 7, class: 'muted' }, 'No node has joined yet.')));
}

function push(samples, value) {
  samples.push(value ?? 0);
  if (samples.length > SAMPLES) samples.shift();
}

export function onlineBadge(online) {
  return el('span', { class: online ? 'badge ok' : 'badge off' }, online ? 'online' : 'offline');
}

export function describeDevices(devices) {
  return (devices || []).map(d => [d.kind, d.name].filter(Boolean).join(': ')).join(', ') || '–';
}

function workerRow(w) {
  return el('tr', { dataset: { worker: w.workerId } },
    el('td', {}, shortId(w.workerId)),
    el('td', {}, onlineBadge(w.online)),
    el('td', {}, w.region),
    el('td', {}, describeDevices(w.devices)),
    el('td', {}, `${w.active} / ${w.slots}`),
    el('td', {}, formatNumber(w.reputation)),
    el('td', {}, (w.kernels || []).join(', ')));
}
