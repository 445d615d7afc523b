// writeReport: runDir/report.html is one self-contained offline page (Chart.js inlined, data as JSON)
// with a chart per plot group that has data, a note naming the groups without data, escaped text
// everywhere, a "no steps yet" page for an empty log, and a clear error for a missing run folder.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as vm from 'vm';
import { MetricsLog } from '../src/osp/metrics';
import type { StepMetrics } from '../src/osp/metrics';
import { PLOT_GROUPS, escapeHtml, jsonForScript, writeReport } from '../src/osp/report';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const nodeFs: typeof fs = require('fs');

let dir: string;
beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'osp-report-')); });
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const chartJs = fs.readFileSync(path.join(path.dirname(require.resolve('chart.js')), 'chart.umd.min.js'), 'utf8');

function full(step: number): StepMetrics {
  return {
    step, epoch: step / 10, elapsedSeconds: step * 3, lr: 2e-6, loss: 0.7 - step * 0.01, gradNorm: 1.2,
    pHatMean: 0.5 + step * 0.01, targetMean: 0.62, absErrorMean: 0.12 - step * 0.01, marginMean: step * 0.03,
    chosenLogprobMean: -50 + step, rejectedLogprobMean: -60 - step, refChosenLogprobMean: -50, refRejectedLogprobMean: -60,
    klEstimate: step * 0.1, responseLengthMean: 100 + step, judgeDisagreementMean: 0.08, judgeAccuracy: 0.7, sampleScoreMean: 0.8,
    secondsGenerate: 2, secondsJudge: 1, secondsTrain: 0.5, tokensPerSecond: 900, pairsPerSecond: 4, pairs: 8, samples: 16,
  };
}

function writeMetrics(records: StepMetrics[]): void {
  const log = new MetricsLog(path.join(dir, 'metrics.jsonl'));
  for (const r of records) log.append(r);
}

const readReport = () => fs.readFileSync(path.join(dir, 'report.html'), 'utf8');
const count = (hay: string, needle: string) => hay.split(needle).length - 1;
const canvasIds = (html: string) => [...html.matchAll(/<canvas id="chart-([^"]+)"/g)].map((m) => m[1]);

/** Runs the page's scripts (except Chart.js itself) against a stub Chart; returns the chart configs. */
function renderCharts(html: string): { canvas: string; config: any }[] {
  const scripts = [...html.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)];
  const data = scripts.find((m) => m[1].includes('id="osp-data"'))!;
  const client = scripts.filter((m) => !m[1].includes('type=') && !m[2].includes('Chart.js v4'));
  expect(client).toHaveLength(1);
  const made: { canvas: string; config: any }[] = [];
  const elements: Record<string, { id: string; textContent: string }> = { 'osp-data': { id: 'osp-data', textContent: data[2] } };
  const document = { getElementById: (id: string) => (elements[id] ??= { id, textContent: '' }) };
  class Chart { constructor(canvas: { id: string }, config: any) { made.push({ canvas: canvas.id, config }); } }
  vm.runInNewContext(client[0][2], { document, Chart, JSON });
  expect(elements['osp-error']?.textContent ?? '').toBe('');
  return made;
}

describe('writeReport with a full metrics log', () => {
  it('writes one self-contained HTML file with the Chart.js code inlined and no external resources', () => {
    writeMetrics([1, 2, 3].map(full));
    const out = writeReport(dir, { title: 'HH TinyLlama' });
    expect(out).toBe(path.join(dir, 'report.html'));
    const html = readReport();
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(count(html, '</html>')).toBe(1);
    expect(html).toContain(chartJs.trim().slice(-2000));
    expect(html).toContain('Chart.js v4');
    expect(html).not.toMatch(/<script[^>]*\ssrc=/);
    expect(html).not.toMatch(/<link[^>]*\shref=/);
    // No URLs outside the inlined library (whose comments and strings hold a few, none fetched).
    expect(html.replace(chartJs.trim(), '')).not.toMatch(/https?:\/\//);
    expect(count(html, '<script')).toBe(3);
    expect(count(html, '</script')).toBe(3);
    expect(fs.readdirSync(dir).sort()).toEqual(['metrics.jsonl', 'report.html']);
  });

  it('inlines a working copy of Chart.js v4: the library script of the page defines Chart in a bare context', () => {
    writeMetrics([full(1)]);
    writeReport(dir);
    const lib = [...readReport().matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]).find((t) => t.includes('Chart.js v4'))!;
    const ctx: { Chart?: { version: string } } = {};
    vm.runInNewContext(lib, ctx);
    expect(typeof ctx.Chart).toBe('function');
    expect(ctx.Chart!.version).toMatch(/^4\./);
  });

  it('has a header with the title and run folder, and tables of config and summary', () => {
    writeMetrics([full(1)]);
    writeReport(dir, {
      title: 'HH TinyLlama',
      config: { beta: 0.02, k: 7, sampling: { topP: 0.9, temperature: 0.7 }, mode: 'spce' },
      summary: { finalLoss: 0.41, winRate: '63%' },
    });
    const html = readReport();
    expect(html).toContain('<title>HH TinyLlama</title>');
    expect(html).toContain('<h1>HH TinyLlama</h1>');
    expect(html).toContain(`<code>${path.resolve(dir)}</code>`);
    expect(html).toContain('<tr><th>beta</th><td>0.02</td></tr>');
    expect(html).toContain('<tr><th>sampling.topP</th><td>0.9</td></tr>');
    expect(html).toContain('<tr><th>mode</th><td>spce</td></tr>');
    expect(html).toContain('<tr><th>finalLoss</th><td>0.41</td></tr>');
    expect(html).toContain('<tr><th>winRate</th><td>63%</td></tr>');
  });

  it('defaults the title to the run folder name', () => {
    writeMetrics([full(1)]);
    writeReport(dir);
    expect(readReport()).toContain(`<h1>osp run ${escapeHtml(path.basename(dir))}</h1>`);
  });

  it('draws one canvas per plot group, each rendered by Chart.js over the steps', () => {
    writeMetrics([1, 2, 3].map(full));
    writeReport(dir);
    const html = readReport();
    const ids = PLOT_GROUPS.map((g) => g.id);
    expect(ids).toEqual(expect.arrayContaining(['loss', 'preference', 'margin', 'logprobs', 'kl', 'length', 'judge', 'time']));
    expect(canvasIds(html)).toEqual(ids);
    expect(html).not.toContain('Not plotted');

    const charts = renderCharts(html);
    expect(charts.map((c) => c.canvas)).toEqual(ids.map((id) => `chart-${id}`));
    const byId = Object.fromEntries(charts.map((c) => [c.canvas.slice('chart-'.length), c.config]));
    for (const c of charts) expect(c.config.data.labels).toEqual([1, 2, 3]);
    expect(byId.loss.type).toBe('line');
    expect(byId.loss.data.datasets[0].data).toEqual([1, 2, 3].map((s) => 0.7 - s * 0.01));
    expect(byId.preference.data.datasets.map((d: any) => d.label)).toEqual(['mean pHat (policy)', 'mean target (judge)', 'mean |pHat - target|']);
    expect(byId.preference.data.datasets[1].data).toEqual([0.62, 0.62, 0.62]);
    expect(byId.logprobs.data.datasets.map((d: any) => d.label)).toEqual(['chosen (policy)', 'rejected (policy)', 'chosen (reference)', 'rejected (reference)']);
    expect(byId.time.type).toBe('bar');
    expect(byId.time.options.scales.x.stacked).toBe(true);
    expect(byId.time.options.scales.y.stacked).toBe(true);
    expect(byId.time.data.datasets.map((d: any) => [d.label, d.data])).toEqual([['generate', [2, 2, 2]], ['judge', [1, 1, 1]], ['train', [0.5, 0.5, 0.5]]]);
  });

  it('plots by step: sorted, last record of a repeated step wins, missing values are null gaps', () => {
    writeMetrics([{ step: 2, loss: 0.5 }, { step: 1, loss: 0.9 }, { step: 2, loss: 0.4 }, { step: 3 }, { step: 4, loss: 0.3 }]);
    writeReport(dir);
    const [loss] = renderCharts(readReport());
    expect(loss.config.data.labels).toEqual([1, 2, 3, 4]);
    expect(loss.config.data.datasets[0].data).toEqual([0.9, 0.4, null, 0.3]);
  });
});

describe('writeReport shows the headline first and does not magnify noise', () => {
  it('opens with the headline (first and last steps of what was measured); the config comes after the charts, folded', () => {
    writeMetrics(Array.from({ length: 25 }, (_, i) => full(i + 1)));
    writeReport(dir, { config: { lr: 2e-6, k: 7 } });
    const html = readReport();
    const at = (needle: string) => html.indexOf(needle);
    expect(at('<h2>Headline</h2>')).toBeGreaterThan(0);
    expect(at('<h2>Headline</h2>')).toBeLessThan(at('<canvas'));
    expect(at('<details id="config">')).toBeGreaterThan(html.lastIndexOf('<canvas'));
    // loss 0.7 - 0.01 step: steps 1-10 average 0.645, steps 16-25 average 0.495.
    expect(html).toContain('<tr><th>loss: first 10 steps -&gt; last 10</th><td>0.6450 -&gt; 0.4950</td></tr>');
    expect(html).toContain('<tr><th>steps</th><td>25</td></tr>');
  });

  it('widens the axis of a flat loss curve to a span of 0.2 (noise is not drawn as a trend); a curve that moves keeps its own', () => {
    writeMetrics([1, 2, 3].map((s) => ({ ...full(s), loss: 0.6931 + (s % 2) * 1e-4 })));
    writeReport(dir);
    const loss = renderCharts(readReport()).find((c) => c.canvas === 'chart-loss')!.config.options.scales.y;
    expect(loss.suggestedMin).toBeCloseTo(0.69315 - 0.1, 10);
    expect(loss.suggestedMax).toBeCloseTo(0.69315 + 0.1, 10);
    writeMetrics([4, 5, 6].map((s) => ({ ...full(s), loss: s })));
    writeReport(dir);
    expect(renderCharts(readReport()).find((c) => c.canvas === 'chart-loss')!.config.options.scales.y.suggestedMin).toBeUndefined();
  });
});

describe('writeReport omits groups without data', () => {
  it('draws only present groups and names the omitted ones in a note', () => {
    writeMetrics([1, 2].map((s) => ({ step: s, loss: 1 / s, secondsTrain: 0.3, chosenLogprobMean: -4 })));
    writeReport(dir);
    const html = readReport();
    expect(canvasIds(html)).toEqual(['loss', 'logprobs', 'time']);
    const note = html.match(/<p class="note" id="omitted">([^<]*)<\/p>/)![1];
    for (const t of ['Mean pHat vs mean target', 'Preference margin', 'KL estimate to the reference', 'Response length', 'Judge position disagreement']) {
      expect(note).toContain(escapeHtml(t));
    }
    expect(note).not.toContain('Loss,');
    expect(note).not.toContain('Time split');
    const charts = renderCharts(html);
    // Within a drawn group only the series with data appear.
    expect(charts[1].config.data.datasets.map((d: any) => d.label)).toEqual(['chosen (policy)']);
    expect(charts[2].config.data.datasets.map((d: any) => d.label)).toEqual(['train']);
  });

  it('treats a series of nulls as missing', () => {
    writeMetrics([{ step: 1, loss: 1, klEstimate: null }, { step: 2, loss: 0.5, klEstimate: null }]);
    writeReport(dir);
    expect(canvasIds(readReport())).toEqual(['loss']);
  });
});

describe('writeReport escapes everything it inserts', () => {
  const evil = '</script><script>alert(1)</script>';

  it('escapes a malicious title, config and summary', () => {
    writeMetrics([full(1)]);
    writeReport(dir, { title: evil, config: { [evil]: evil, nested: { x: `<img src=x onerror=alert(2)>` } }, summary: { [evil]: evil } });
    const html = readReport();
    expect(html).not.toContain('<script>alert(1)');
    expect(html).not.toContain('<img');
    expect(count(html, '<script')).toBe(3);
    expect(count(html, '</script')).toBe(3);
    expect(html).toContain(`<title>${escapeHtml(evil)}</title>`);
    expect(html).toContain('&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(renderCharts(html)).toHaveLength(PLOT_GROUPS.length);
  });

  it('escapes a malicious title on the empty page too', () => {
    writeReport(dir, { title: evil });
    const html = readReport();
    expect(html).not.toContain('<script');
    expect(html).toContain(`<h1>${escapeHtml(evil)}</h1>`);
  });

  it('jsonForScript keeps "</script" and "<!--" out of embedded JSON and round-trips', () => {
    const value = { s: `${evil}<!-- \u2028 & >` };
    const text = jsonForScript(value);
    expect(text).not.toMatch(/<\/script/i);
    expect(text).not.toContain('<!--');
    expect(text).not.toContain('\u2028');
    expect(JSON.parse(text)).toEqual(value);
  });

  it('escapeHtml escapes the five special characters', () => {
    expect(escapeHtml(`<a href="x" title='y'>&</a>`)).toBe('&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;');
  });
});

describe('writeReport with no steps yet', () => {
  it.each([
    ['an empty metrics.jsonl', () => fs.writeFileSync(path.join(dir, 'metrics.jsonl'), '')],
    ['no metrics.jsonl at all', () => undefined],
    ['only a line cut short', () => fs.writeFileSync(path.join(dir, 'metrics.jsonl'), '{"step":1,"lo')],
  ])('writes a valid page saying there are no steps yet for %s', (_name, setup) => {
    setup();
    writeReport(dir, { title: 'fresh run', summary: { status: 'starting' } });
    const html = readReport();
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html.trimEnd().endsWith('</html>')).toBe(true);
    expect(html).toContain('<h1>fresh run</h1>');
    expect(html).toMatch(/No steps yet/);
    expect(html).toContain('0 steps');
    expect(html).toContain('<tr><th>status</th><td>starting</td></tr>');
    expect(canvasIds(html)).toEqual([]);
  });
});

describe('writeReport errors and atomicity', () => {
  it('throws a clear error for a missing run folder, writing nothing', () => {
    const missing = path.join(dir, 'no-such-run');
    expect(() => writeReport(missing)).toThrow(`writeReport: run folder not found: ${missing}`);
    expect(fs.existsSync(missing)).toBe(false);
  });

  it('throws when the run folder is a file', () => {
    const f = path.join(dir, 'file');
    fs.writeFileSync(f, '');
    expect(() => writeReport(f)).toThrow(`writeReport: not a folder: ${f}`);
  });

  it('replaces an existing report through a temp file and a rename in the run folder', () => {
    writeMetrics([full(1)]);
    fs.writeFileSync(path.join(dir, 'report.html'), 'old report');
    const renames: [string, string][] = [];
    const spy = jest.spyOn(nodeFs, 'renameSync').mockImplementation(((a: fs.PathLike, b: fs.PathLike) => {
      renames.push([String(a), String(b)]);
      expect(fs.readFileSync(b, 'utf8')).toBe('old report');
      expect(fs.readFileSync(a, 'utf8')).toContain('<!DOCTYPE html>');
      spy.mockRestore();
      nodeFs.renameSync(a, b);
    }) as typeof fs.renameSync);
    writeReport(dir);
    expect(renames).toHaveLength(1);
    expect(path.dirname(renames[0][0])).toBe(dir);
    expect(renames[0][1]).toBe(path.join(dir, 'report.html'));
    expect(readReport()).toContain('<!DOCTYPE html>');
    expect(fs.readdirSync(dir).sort()).toEqual(['metrics.jsonl', 'report.html']);
  });
});
