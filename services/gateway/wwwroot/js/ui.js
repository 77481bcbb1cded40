// Small DOM and number helpers (charts are charts.js). Text always goes in as textContent, never as HTML: everything shown
// comes from the network (worker notes, job errors) and must not be able to inject markup.

/** An element with attributes and children (strings become text). */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value == null) continue;
    if (name === 'class') node.className = value;
    else if (name === 'dataset') Object.assign(node.dataset, value);
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : value);
  }
  node.append(...children.flat().filter(c => c != null).map(c => (c instanceof Node ? c : String(c))));
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);

export function setText(selector, text) {
  const node = typeof selector === 'string' ? $(selector) : selector;
  if (node) node.textContent = text;
}

const credits = new Intl.NumberFormat(undefined, { maximumFractionDigits: 6 });
const plain = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
const significant = new Intl.NumberFormat(undefined, { maximumSignificantDigits: 3 });

/** Credits are decimals with at most 6 fractional digits; JSON numbers carry them exactly enough to show. */
export const formatCredits = value => (value == null ? '–' : credits.format(value));
export const formatNumber = value => (value == null ? '–' : plain.format(value));
export const formatPercent = value => (value == null ? '–' : `${plain.format(value * 100)} %`);

/**
 * Three significant digits, in scientific notation outside 0.01..99,999: joules per GFLOP of a small job run
 * to millions, those of a big one on a GPU to hundredths.
 */
export function formatSignificant(value) {
  if (value == null) return '–';
  const rounded = Number(value.toPrecision(3));
  const magnitude = Math.abs(rounded);
  if (magnitude !== 0 && (magnitude >= 1e5 || magnitude < 0.01)) {
    const [mantissa, exponent] = rounded.toExponential(2).split('e');
    return `${mantissa.replace(/\.?0+$/, '')}e${Number(exponent)}`;
  }
  return significant.format(rounded);
}

/** Joules with a unit that keeps the number short: 0.58 J, 12.4 kJ, 3.1 MJ. */
export function formatJoules(value) {
  if (value == null) return '–';
  const units = ['J', 'kJ', 'MJ', 'GJ'];
  let n = value;
  let unit = 0;
  while (Math.abs(n) >= 1000 && unit < units.length - 1) {
    n /= 1000;
    unit++;
  }
  return `${formatSignificant(n)} ${units[unit]}`;
}

/** Where energy figures came from: a power sensor, an estimate from calibrated power and time, or both. */
export function energySource(measuredShare) {
  if (measuredShare == null) return '';
  if (measuredShare >= 1) return 'measured';
  if (measuredShare <= 0) return 'estimated';
  return `${plain.format(measuredShare * 100)} % measured`;
}

/** A worker's or the network's energy in a line: "0.58 J per job, 1.1e6 J/GFLOP, estimated". */
export function describeEnergy(energy) {
  if (!energy || !energy.jobs) return 'no accepted work yet';
  const parts = [`${formatJoules(energy.joulesPerJob)} per job`];
  if (energy.joulesPerGflop != null) parts.push(`${formatSignificant(energy.joulesPerGflop)} J/GFLOP`);
  parts.push(energySource(energy.measuredShare));
  return parts.join(', ');
}

export function formatBytes(value) {
  if (value == null) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let n = value;
  let unit = 0;
  while (n >= 1024 && unit < units.length - 1) {
    n /= 1024;
    unit++;
  }
  return `${plain.format(n)} ${units[unit]}`;
}

export function formatTime(value) {
  if (!value) return '–';
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

/** An id shortened for a table cell; the full id stays in the title (tooltip) and for screen readers. */
export function shortId(id) {
  if (!id) return el('span', {}, '–');
  return el('code', { title: id }, id.length > 14 ? `${id.slice(0, 10)}…` : id);
}

// Calls refresh() now and then every intervalMs while started; errors go to report(). Only the latest start()
// keeps ticking: a stop() and start() in between must not leave a second loop running.
export function poller(refresh, intervalMs) {
  let timer = null;
  let generation = 0;
  return {
    start(report) {
      if (timer) return;
      const mine = ++generation;
      const tick = async () => {
        try {
          await refresh();
        } catch (error) {
          report(error);
        }
        if (mine === generation) timer = setTimeout(tick, intervalMs);
      };
      timer = setTimeout(tick, 0);
    },
    stop() {
      generation++;
      clearTimeout(timer);
      timer = null;
    },
  };
}
