// Every chart of the dashboard, drawn by Chart.js (vendor/chart.js: pinned, served by this gateway beside its
// licence, loaded before the modules as the global Chart). One look for all: no animation (a chart redrawn every
// few seconds should not wriggle), the API's own numbers in the tooltips, a sentence in place of an empty chart.
import { formatNumber } from './ui.js';

const COLOURS = ['#2f6fdf', '#d9822b', '#2e9d5b', '#b8428f', '#6b5fd3', '#8a8f1c', '#c0392b', '#1b9aaa'];

export const colour = i => COLOURS[i % COLOURS.length];

/**
 * Draws (or redraws in place) a chart on the <canvas> in `figure`. `series` is [{ label, data, ... }] with one
 * value per label; null values leave gaps. With no data, the chart is hidden and `empty` shown instead.
 */
export function drawChart(figure, { type = 'line', labels, series, format = formatNumber, empty = 'nothing yet', stacked = false,
  horizontal = false, xTitle, yTitle, floating = false }) {
  const canvas = figure.querySelector('canvas');
  const message = figure.querySelector('.chart-empty') ?? figure.appendChild(Object.assign(document.createElement('p'), { className: 'chart-empty muted' }));
  const hasData = labels.length > 0 && series.some(s => s.data.some(v => v != null));
  (canvas.closest('.chart-box') ?? canvas).hidden = !hasData;
  message.hidden = hasData;
  message.textContent = hasData ? '' : empty;
  figure.dataset.points = String(hasData ? series.reduce((n, s) => n + s.data.filter(v => v != null).length, 0) : 0);
  // The numbers as text for screen readers: each bar of a one-series bar chart, otherwise each series' latest value.
  canvas.setAttribute('role', 'img');
  canvas.setAttribute('aria-label', !hasData ? empty : type === 'bar' && series.length === 1
    ? labels.map((label, i) => `${label}: ${describe(series[0].data[i], format)}`).join(', ')
    : series.map(s => `${s.label}: ${describe(s.data.findLast(v => v != null), format)}`).join(', '));
  const datasets = series.map((s, i) => ({
    borderColor: colour(i), backgroundColor: type === 'line' ? colour(i) : `${colour(i)}cc`, pointRadius: type === 'line' ? 1.5 : undefined,
    borderWidth: type === 'line' ? 2 : 0, spanGaps: false, ...s,
  }));
  const existing = window.Chart.getChart(canvas);
  if (existing && existing.config.type === type) {
    existing.data.labels = labels;
    existing.data.datasets = datasets;
    // Series may come and go (a node joins, a kernel gets measured): the legend follows.
    existing.options.plugins.legend.display = series.length > 1;
    existing.update('none');
    return existing;
  }
  existing?.destroy();
  const valueAxis = {
    beginAtZero: true, stacked,
    title: yTitle ? { display: true, text: yTitle } : undefined,
    ticks: { callback: value => format(value) },
  };
  const labelAxis = { stacked, title: xTitle ? { display: true, text: xTitle } : undefined, ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 8 } };
  return new window.Chart(canvas, {
    type,
    data: { labels, datasets },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      indexAxis: horizontal ? 'y' : 'x',
      interaction: { mode: 'index', intersect: false },
      plugins: {
        legend: { display: series.length > 1, position: 'bottom', labels: { boxWidth: 12 } },
        tooltip: { callbacks: { label: item => `${item.dataset.label}: ${floating ? describeSpan(item.raw, format) : format(item.parsed[horizontal ? 'x' : 'y'])}` } },
      },
      scales: horizontal ? { x: valueAxis, y: labelAxis } : { x: labelAxis, y: valueAxis },
    },
  });
}

function describe(value, format) {
  return value == null ? 'none' : Array.isArray(value) ? describeSpan(value, format) : format(value);
}

function describeSpan([from, to], format) {
  return `${format(from)} to ${format(to)}`;
}

/** The time of a sample as the axis shows it: hours and minutes, seconds when samples are closer than a minute. */
export function timeLabel(at, intervalSeconds) {
  const options = intervalSeconds < 60 ? { hour: '2-digit', minute: '2-digit', second: '2-digit' } : { hour: '2-digit', minute: '2-digit' };
  return new Date(at).toLocaleTimeString([], options);
}
