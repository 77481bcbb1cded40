// The public network view: GET /v1/network, /v1/network/history and /v1/workers, refreshed every few seconds while shown.
import { api, optional } from './api.js';
import { drawChart, timeLabel } from './charts.js';
import {
  $, el, poller, setText, shortId, describeEnergy, energySource, formatBytes, formatCredits, formatJoules, formatNumber, formatPercent,
  formatSignificant,
} from './ui.js';

const REFRESH_MS = 4000;

const refreshing = poller(refresh, REFRESH_MS);

export function showNetwork(report) {
  refreshing.start(report);
}

export function hideNetwork() {
  refreshing.stop();
}

async function refresh() {
  const [network, workers, history] = await Promise.all([api('/v1/network'), api('/v1/workers'), optional('/v1/network/history')]);
  setText('[data-stat="workersOnline"]', formatNumber(network.workersOnline));
  setText('[data-stat="workersOffline"]', formatNumber(network.workersOffline));
  setText('[data-stat="load"]', formatPercent(network.load));
  setText('[data-stat="slots"]', `${formatNumber(network.activeAttempts)} / ${formatNumber(network.slots)}`);
  setText('[data-stat="jobsQueued"]', formatNumber(network.jobsQueued));
  setText('[data-stat="jobsPerMinute"]', formatNumber(network.jobsPerMinute));
  // Null when the broker's management API could not be read: a dash, not a reassuring zero.
  setText('[data-stat="deadLetters"]', network.deadLetters == null ? '–' : formatNumber(network.deadLetters));
  $('[data-stat="deadLetters"]').classList.toggle('warn', (network.deadLetters ?? 0) > 0);
  setText('[data-stat="creditsMinted"]', formatCredits(network.creditsMinted));
  setText('[data-stat="bytesPinned"]', formatBytes(network.bytesPinned));
  setText('[data-stat="blobsPinned"]', formatNumber(network.blobsPinned));
  showEnergy(network.energy, network.verification);
  setText('#network-updated', `updated ${new Date().toLocaleTimeString()}`);

  countChart($('#chart-regions'), network.regions, 'nodes online');
  countChart($('#chart-devices'), network.devices, 'nodes online');
  showHistory(history);

  // The rows are rebuilt on every refresh: a node's rates someone opened stay open.
  const open = new Set([...document.querySelectorAll('#workers details.rates[open]')].map(d => d.closest('tr').dataset.worker));
  $('#workers tbody').replaceChildren(...workers.map(w => workerRow(w, open.has(w.workerId))));
  if (workers.length === 0) $('#workers tbody').append(el('tr', {}, el('td', { colspan: 8, class: 'muted' }, 'No node has joined yet.')));
}

// Older gateways send neither: the figures stay at a dash.
function showEnergy(energy, verification) {
  setText('[data-stat="joulesPerJob"]', formatJoules(energy?.joulesPerJob));
  setText('[data-stat="joulesPerGflop"]', energy?.joulesPerGflop == null ? '–' : `${formatSignificant(energy.joulesPerGflop)} J`);
  setText('[data-stat="verificationOverhead"]', formatPercent(verification?.overhead));
  const notes = [];
  if (energy?.jobs) notes.push(`Energy over ${formatNumber(energy.jobs)} completed ${energy.jobs === 1 ? 'job' : 'jobs'} (${formatJoules(energy.joules)} in all, ${energySource(energy.measuredShare)}).`);
  if (verification?.jobs) {
    notes.push(`Verification: ${formatNumber(verification.extraAttempts)} extra attempts over the last ${formatNumber(verification.jobs)} ${verification.jobs === 1 ? 'job' : 'jobs'}, ` +
      `${formatNumber(verification.spotChecked)} spot-checked, ${formatNumber(verification.mismatches)} mismatches.`);
  }
  setText('#network-energy-note', notes.join(' '));
}

/** A node's energy in a table cell: J/GFLOP first (what the energy policy ranks by), the rest on hover. */
export function energyCell(energy) {
  if (!energy || !energy.jobs) return el('td', { class: 'muted', dataset: { energy: '' } }, '–');
  const headline = energy.joulesPerGflop != null ? `${formatSignificant(energy.joulesPerGflop)} J/GFLOP` : `${formatJoules(energy.joulesPerJob)} per job`;
  return el('td', { dataset: { energy: '' }, title: `${describeEnergy(energy)}; ${formatNumber(energy.jobs)} accepted attempts` }, headline);
}

function countChart(figure, counts, label) {
  const entries = Object.entries(counts || {});
  drawChart(figure, { type: 'bar', horizontal: true, labels: entries.map(([name]) => name), series: [{ label, data: entries.map(([, n]) => n) }], empty: 'no node online' });
}

// The scheduler's samples (one per interval): throughput, latency and the queue over the last hour. A gateway
// without the route (null) says so rather than drawing nothing.
function showHistory(history) {
  const empty = history === null ? 'This gateway does not serve the network\'s history yet.' : 'No sample yet: the scheduler takes one at the end of every interval.';
  const samples = history?.samples ?? [];
  if (history) setText('#history-interval', history.intervalSeconds % 60 === 0 ? (history.intervalSeconds === 60 ? 'minute' : `${formatNumber(history.intervalSeconds / 60)} minutes`) : `${formatNumber(history.intervalSeconds)} s`);
  const labels = samples.map(s => timeLabel(s.at, history.intervalSeconds));
  drawChart($('#chart-throughput'), { labels, series: [{ label: 'jobs per minute', data: samples.map(s => s.jobsPerMinute) }], empty });
  drawChart($('#chart-latency'), {
    labels, empty, format: formatSignificant,
    series: [{ label: 'p50', data: samples.map(s => s.latencyP50Ms) }, { label: 'p99', data: samples.map(s => s.latencyP99Ms) }],
  });
  drawChart($('#chart-queue'), {
    labels, empty,
    series: [{ label: 'queued', data: samples.map(s => s.queued) }, { label: 'busy slots', data: samples.map(s => s.active) },
      { label: 'slots', data: samples.map(s => s.slots) }],
  });
}

export function onlineBadge(online) {
  return el('span', { class: online ? 'badge ok' : 'badge off' }, online ? 'online' : 'offline');
}

export function describeDevices(devices) {
  return (devices || []).map(d => [d.kind, d.name].filter(Boolean).join(': ')).join(', ') || '–';
}

function workerRow(w, ratesOpen) {
  return el('tr', { dataset: { worker: w.workerId } },
    el('td', {}, shortId(w.workerId)),
    el('td', {}, onlineBadge(w.online)),
    el('td', {}, w.region),
    el('td', {}, describeDevices(w.devices)),
    el('td', {}, `${w.active} / ${w.slots}`),
    el('td', {}, formatNumber(w.reputation)),
    energyCell(w.energy),
    kernelsCell(w, ratesOpen));
}

// Each kernel with the backend calibration routed it to, and what the node measured on every backend it opened
// one click away (a hover title alone is out of reach on a touch screen and for the keyboard). Older nodes
// announce no rates: the kernels alone.
function kernelsCell(w, ratesOpen) {
  const kernels = w.kernels || [];
  const routed = w.backendPerKernel || {};
  const rates = w.gflopsPerBackend || {};
  const backends = Object.keys(rates).sort();
  const names = kernels.flatMap((k, i) => [i > 0 ? ', ' : '',
    el('span', { dataset: routed[k] ? { kernel: k, backend: routed[k] } : { kernel: k } }, routed[k] ? `${k} (${routed[k]})` : k)]);
  if (backends.length === 0) return el('td', { dataset: { kernels: '' } }, names);
  return el('td', { dataset: { kernels: '' } }, names,
    el('details', { class: 'rates', open: ratesOpen },
      el('summary', {}, 'GFLOP/s per backend'),
      el('table', {},
        el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Kernel'), backends.map(b => el('th', { scope: 'col', dataset: { backend: b } }, b)))),
        el('tbody', {}, kernels.map(k => el('tr', { dataset: { kernel: k } },
          el('th', { scope: 'row' }, k),
          backends.map(b => el('td', { class: b === routed[k] ? 'num routed' : 'num', dataset: { backend: b } }, formatNumber(rates[b][k])))))))));
}
