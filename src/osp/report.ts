// report.html of a run folder: one self-contained, offline HTML page (Chart.js inlined) with a
// line/bar chart per plot group of metrics.jsonl, plus tables of the run's config and summary.
import { escapeHtml } from '../util/escape';
import * as fs from 'fs';
import * as path from 'path';
import { writeFileAtomicSync } from '../util/atomicWrite';
import { MetricsLog } from './metrics';
import type { StepMetricField, StepMetrics } from './metrics';

export interface ReportOptions {
  /** Page title; defaults to "osp run <folder name>". */
  title?: string;
  /** Run configuration, shown as a table (nested objects flattened to dotted keys). */
  config?: object;
  /** Headline numbers of the run (final loss, win rate, ...), shown as a table. */
  summary?: Record<string, string | number>;
}

interface SeriesSpec { key: StepMetricField; label: string; color: string; dashed?: boolean; axis?: 'y' | 'y1' }
/** minSpan: the y axis spans at least this much, so that noise in a flat curve is not magnified into a trend. */
interface GroupSpec { id: string; title: string; yLabel: string; y1Label?: string; kind: 'line' | 'stackedBar'; series: SeriesSpec[]; minSpan?: number }

const C = {
  blue: '#1f77b4', orange: '#ff7f0e', green: '#2ca02c', red: '#d62728',
  purple: '#9467bd', brown: '#8c564b', gray: '#7f7f7f', teal: '#17becf',
};

/** The plot groups, in page order. A group is drawn when at least one of its series has data. */
export const PLOT_GROUPS: readonly GroupSpec[] = [
  { id: 'loss', title: 'Loss', yLabel: 'loss', kind: 'line', minSpan: 0.2, series: [{ key: 'loss', label: 'loss', color: C.blue }] },
  {
    id: 'preference', title: 'Mean pHat vs mean target', yLabel: 'preference strength', kind: 'line', minSpan: 0.5,
    series: [
      { key: 'pHatMean', label: 'mean pHat (policy)', color: C.blue },
      { key: 'targetMean', label: 'mean target (judge)', color: C.orange },
      { key: 'absErrorMean', label: 'mean |pHat - target|', color: C.gray, dashed: true },
    ],
  },
  { id: 'margin', title: 'Preference margin', yLabel: 'mean z', kind: 'line', series: [{ key: 'marginMean', label: 'mean margin z', color: C.purple }] },
  {
    id: 'logprobs', title: 'Chosen / rejected log-probs', yLabel: 'sequence log-prob', kind: 'line',
    series: [
      { key: 'chosenLogprobMean', label: 'chosen (policy)', color: C.green },
      { key: 'rejectedLogprobMean', label: 'rejected (policy)', color: C.red },
      { key: 'refChosenLogprobMean', label: 'chosen (reference)', color: C.green, dashed: true },
      { key: 'refRejectedLogprobMean', label: 'rejected (reference)', color: C.red, dashed: true },
    ],
  },
  { id: 'kl', title: 'KL estimate to the reference', yLabel: 'nats per response', kind: 'line', series: [{ key: 'klEstimate', label: 'KL estimate', color: C.brown }] },
  { id: 'length', title: 'Response length', yLabel: 'tokens', kind: 'line', series: [{ key: 'responseLengthMean', label: 'mean response length', color: C.teal }] },
  {
    id: 'judge', title: 'Judge position disagreement', yLabel: 'fraction', kind: 'line',
    series: [
      { key: 'judgeDisagreementMean', label: 'mean |pAB - (1 - pBA)|', color: C.orange },
      { key: 'judgeAccuracy', label: 'judge accuracy (vs scorer)', color: C.blue, dashed: true },
    ],
  },
  { id: 'quality', title: 'Sample quality (task scorer)', yLabel: 'mean score', kind: 'line', series: [{ key: 'sampleScoreMean', label: 'mean score of the sampled responses', color: C.green }] },
  {
    id: 'time', title: 'Time split per step', yLabel: 'seconds', kind: 'stackedBar',
    series: [
      { key: 'secondsGenerate', label: 'generate', color: C.blue },
      { key: 'secondsJudge', label: 'judge', color: C.orange },
      { key: 'secondsTrain', label: 'train', color: C.green },
    ],
  },
  { id: 'lr', title: 'Learning rate', yLabel: 'lr', kind: 'line', series: [{ key: 'lr', label: 'learning rate', color: C.gray }] },
  { id: 'gradNorm', title: 'Gradient norm', yLabel: 'norm', kind: 'line', series: [{ key: 'gradNorm', label: 'gradient norm', color: C.purple }] },
  {
    id: 'throughput', title: 'Throughput', yLabel: 'tokens / s', y1Label: 'pairs / s', kind: 'line',
    series: [
      { key: 'tokensPerSecond', label: 'tokens / s', color: C.blue },
      { key: 'pairsPerSecond', label: 'pairs / s', color: C.orange, axis: 'y1' },
    ],
  },
];

export { escapeHtml };

/** JSON that is safe inside a <script> element: no "</script", "<!--" or line separators survive. */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

let chartJsSource: string | undefined;

/** The Chart.js UMD bundle, found through the package's own entry point (works from src and dist). */
export function chartJsCode(): string {
  if (chartJsSource !== undefined) return chartJsSource;
  // chart.js's "exports" map hides dist/*.umd*.js from require.resolve; its main entry lives in the same folder.
  const distDir = path.dirname(require.resolve('chart.js'));
  const candidates = ['chart.umd.min.js', 'chart.umd.js'].map((f) => path.join(distDir, f));
  const file = candidates.find((f) => fs.existsSync(f));
  if (!file) throw new Error(`Chart.js UMD bundle not found next to ${require.resolve('chart.js')}`);
  // The bundle is inlined in a <script>; make sure nothing in it can end that element early.
  chartJsSource = fs.readFileSync(file, 'utf8').replace(/<\/(script)/gi, '<\\/$1').replace(/<!--/g, '<\\!--');
  return chartJsSource;
}

function flatten(obj: unknown, prefix: string, out: [string, string][]): void {
  if (obj !== null && typeof obj === 'object' && !Array.isArray(obj) && Object.keys(obj).length > 0) {
    for (const [k, v] of Object.entries(obj as Record<string, unknown>)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
    return;
  }
  let text: string;
  if (typeof obj === 'string') text = obj;
  else if (obj === undefined) text = 'undefined';
  else if (typeof obj === 'bigint') text = obj.toString();
  else text = JSON.stringify(obj) ?? String(obj);
  out.push([prefix || '(value)', text]);
}

function table(caption: string, rows: [string, string][]): string {
  if (rows.length === 0) return '';
  const body = rows.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join('\n');
  return `<section class="table"><h2>${escapeHtml(caption)}</h2><table>\n${body}\n</table></section>`;
}

/** Last record per step wins (a resumed run that was not truncated), ordered by step. */
function byStep(records: StepMetrics[]): StepMetrics[] {
  const map = new Map<number, StepMetrics>();
  for (const r of records) map.set(r.step, r);
  return [...map.values()].sort((a, b) => a.step - b.step);
}

function numberOrNull(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

const STYLE = `
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #222; background: #fafafa; }
header h1 { margin: 0 0 4px 0; font-size: 1.5em; }
header p { margin: 2px 0; color: #555; }
code { background: #eee; padding: 1px 4px; border-radius: 3px; }
.tables { display: flex; flex-wrap: wrap; gap: 24px; margin: 16px 0; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; font-weight: 600; }
h2 { font-size: 1.1em; margin: 8px 0; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 16px; }
.chart { background: #fff; border: 1px solid #ddd; border-radius: 4px; padding: 8px 12px; }
.chart .box { position: relative; height: 300px; }
.note { color: #555; font-style: italic; }
`;

// Runs in the browser: builds one Chart per group from the embedded JSON.
const CLIENT = `
(function () {
  var data = JSON.parse(document.getElementById('osp-data').textContent);
  if (typeof Chart === 'undefined') { document.getElementById('osp-error').textContent = 'Chart.js failed to load.'; return; }
  data.groups.forEach(function (g) {
    var canvas = document.getElementById('chart-' + g.id);
    var stacked = g.kind === 'stackedBar';
    var scales = {
      x: { title: { display: true, text: 'step' }, stacked: stacked },
      y: { title: { display: true, text: g.yLabel }, stacked: stacked, beginAtZero: stacked }
    };
    if (g.minSpan) {
      // Widen a flat curve's axis to minSpan around its middle (Chart.js keeps data that falls outside).
      var ys = [];
      g.series.forEach(function (s) { if (!s.axis || s.axis === 'y') s.data.forEach(function (v) { if (v !== null) ys.push(v); }); });
      var lo = Math.min.apply(null, ys), hi = Math.max.apply(null, ys);
      if (ys.length && hi - lo < g.minSpan) { scales.y.suggestedMin = (lo + hi) / 2 - g.minSpan / 2; scales.y.suggestedMax = (lo + hi) / 2 + g.minSpan / 2; }
    }
    if (g.y1Label) scales.y1 = { position: 'right', title: { display: true, text: g.y1Label }, grid: { drawOnChartArea: false } };
    new Chart(canvas, {
      type: stacked ? 'bar' : 'line',
      data: {
        labels: data.steps,
        datasets: g.series.map(function (s) {
          return {
            label: s.label, data: s.data, yAxisID: s.axis || 'y',
            borderColor: s.color, backgroundColor: stacked ? s.color : s.color + '33',
            borderDash: s.dashed ? [6, 4] : [], borderWidth: stacked ? 0 : 1.5,
            pointRadius: data.steps.length > 60 ? 0 : 2, spanGaps: true, stack: stacked ? 'time' : undefined
          };
        })
      },
      options: {
        animation: false, maintainAspectRatio: false, interaction: { mode: 'index', intersect: false },
        plugins: { legend: { position: 'bottom' } }, scales: scales
      }
    });
  });
})();
`;

/** The run's headline numbers: means over the first and the last (up to) 10 steps of what was measured. */
function headlineRows(records: StepMetrics[]): [string, string][] {
  if (records.length === 0) return [];
  const window = Math.min(10, records.length);
  const mean = (rs: StepMetrics[], k: StepMetricField) => {
    const v = rs.map((r) => r[k]).filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
    return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
  };
  const first = records.slice(0, window);
  const latest = records.slice(-window);
  const rows: [string, string][] = [['steps', String(records[records.length - 1].step)]];
  const fields: [StepMetricField, string, number][] = [
    ['sampleScoreMean', 'sample quality (task scorer)', 3], ['loss', 'loss', 4], ['pHatMean', 'mean pHat', 3], ['targetMean', 'mean target', 3],
    ['marginMean', 'mean margin', 4], ['klEstimate', 'KL estimate', 3], ['responseLengthMean', 'response length', 1], ['gradNorm', 'gradient norm', 3],
    ['hostWaitsTrain', 'host waits per training step', 0],
  ];
  for (const [k, label, digits] of fields) {
    const a = mean(first, k);
    const b = mean(latest, k);
    if (a === null || b === null) continue;
    rows.push([`${label}: first ${window} steps -> last ${window}`, `${a.toFixed(digits)} -> ${b.toFixed(digits)}`]);
  }
  return rows;
}

/**
 * Reads `runDir/metrics.jsonl` and writes `runDir/report.html` atomically (temp file, rename).
 * Returns the report's path. Throws when `runDir` is not an existing folder.
 */
export function writeReport(runDir: string, opts: ReportOptions = {}): string {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(runDir);
  } catch {
    throw new Error(`writeReport: run folder not found: ${runDir}`);
  }
  if (!stat.isDirectory()) throw new Error(`writeReport: not a folder: ${runDir}`);

  const metricsFile = path.join(runDir, 'metrics.jsonl');
  const records = byStep(MetricsLog.read(metricsFile));
  const title = opts.title ?? `osp run ${path.basename(path.resolve(runDir))}`;
  const steps = records.map((r) => r.step);

  const drawn: { id: string; title: string; yLabel: string; y1Label?: string; kind: string; minSpan?: number; series: object[] }[] = [];
  const omitted: string[] = [];
  for (const g of PLOT_GROUPS) {
    const series = g.series
      .map((s) => ({ ...s, data: records.map((r) => numberOrNull(r[s.key])) }))
      .filter((s) => s.data.some((v) => v !== null));
    if (series.length === 0) {
      omitted.push(g.title);
      continue;
    }
    drawn.push({ id: g.id, title: g.title, yLabel: g.yLabel, y1Label: series.some((s) => s.axis === 'y1') ? g.y1Label : undefined, kind: g.kind, minSpan: g.minSpan, series });
  }

  const configRows: [string, string][] = [];
  if (opts.config !== undefined) flatten(opts.config, '', configRows);
  const summaryRows: [string, string][] = Object.entries(opts.summary ?? {}).map(([k, v]) => [k, String(v)]);
  const last = records[records.length - 1];

  const parts: string[] = [];
  parts.push('<!DOCTYPE html>');
  parts.push('<html lang="en">');
  parts.push('<head>');
  parts.push('<meta charset="utf-8">');
  parts.push('<meta name="viewport" content="width=device-width, initial-scale=1">');
  parts.push(`<title>${escapeHtml(title)}</title>`);
  parts.push(`<style>${STYLE}</style>`);
  parts.push('</head>');
  parts.push('<body>');
  parts.push('<header>');
  parts.push(`<h1>${escapeHtml(title)}</h1>`);
  parts.push(`<p>Run folder: <code>${escapeHtml(path.resolve(runDir))}</code></p>`);
  parts.push(`<p>Generated ${escapeHtml(new Date().toISOString())}; ${records.length} step${records.length === 1 ? '' : 's'}` +
    (last ? `, last step ${last.step}` : '') + '.</p>');
  parts.push('</header>');
  // The headline first: where the run stands, from the last steps; the config comes last, folded.
  const headline = headlineRows(records);
  const tables = table('Headline', headline) + table('Summary', summaryRows);
  if (tables) parts.push(`<div class="tables">${tables}</div>`);

  if (records.length === 0) {
    parts.push('<p class="note" id="no-steps">No steps yet: metrics.jsonl has no complete lines.</p>');
  } else {
    parts.push('<p class="note" id="osp-error"></p>');
    if (omitted.length > 0) {
      parts.push(`<p class="note" id="omitted">Not plotted (no data): ${omitted.map(escapeHtml).join(', ')}.</p>`);
    }
    parts.push('<main class="charts">');
    for (const g of drawn) {
      parts.push(`<section class="chart" id="group-${escapeHtml(g.id)}"><h2>${escapeHtml(g.title)}</h2>` +
        `<div class="box"><canvas id="chart-${escapeHtml(g.id)}" aria-label="${escapeHtml(g.title)}" role="img"></canvas></div></section>`);
    }
    parts.push('</main>');
    if (configRows.length) parts.push(`<details id="config"><summary>Config (${configRows.length} settings)</summary>${table('Config', configRows)}</details>`);
    parts.push(`<script type="application/json" id="osp-data">${jsonForScript({ steps, groups: drawn })}</script>`);
    parts.push(`<script>${chartJsCode()}</script>`);
    parts.push(`<script>${CLIENT}</script>`);
  }
  parts.push('</body>');
  parts.push('</html>');

  const out = path.join(runDir, 'report.html');
  writeFileAtomicSync(out, parts.join('\n') + '\n');
  return out;
}
