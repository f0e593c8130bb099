// The report: one self-contained HTML page over the settings of a run (no external resources: plots
// are inline SVG, images inline base64 PNGs, the style inline). Sections: the main table beside the
// paper's numbers, accuracy bars, every evaluation of the suite as a table, efficiency bars,
// training curves, a gallery of test images with each method's reasoning (wrong steps marked), and
// the run's configuration, device, wall times and throughput.
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { scoreToolCall } from '../data/tool_policy.js';
import type { PolicyRecord } from '../data/export.js';
import { parseCitedSteps, referralScore } from '../eval/referral.js';
import type { RlStepMetrics } from '../stages/rl.js';
import type { RunView, SettingView } from './load.js';
import { PAPER_EFFICIENCY, PAPER_MAIN, PAPER_NOTES, PAPER_OVERRIDE } from './paper.js';
import { groupedBarSpec, lossSpec, panelBarSpec, renderSvg, rlSpec } from './plots.js';

/** Options of renderReport / writeReport. */
export interface ReportOptions {
  /** Test images per setting in the gallery (default 4). */
  galleryItems?: number;
  /** The time printed as "generated" (default now). */
  now?: Date;
}

// ---- small helpers ---------------------------------------------------------------------------------

/** Escapes text for HTML. */
export function esc(s: unknown): string {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const pct = (x: number | null | undefined, digits = 1): string => (x === null || x === undefined || !Number.isFinite(x) ? '—' : `${(100 * x).toFixed(digits)}%`);
const fix = (x: number | null | undefined, digits = 2): string => (x === null || x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(digits));
const signedPct = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? '—' : `${x >= 0 ? '+' : '−'}${Math.abs(100 * x).toFixed(1)}`);

/** A table; cells are HTML already (escape text with esc). */
function table(head: readonly string[], rows: readonly (readonly string[])[], cls = ''): string {
  if (rows.length === 0) return '<p class="empty">no entries yet</p>';
  return `<table class="${cls}"><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
}

function figure(svg: string, caption: string): string {
  return `<figure class="plot">${svg}<figcaption>${caption}</figcaption></figure>`;
}

/** "ClevrPolicy-T N=2" / "ToolPolicy". */
function settingTitle(s: SettingView): string {
  const r = s.results;
  if (r.setting === 'tool') return 'ToolPolicy';
  return `ClevrPolicy-${r.setting.endsWith('-m') ? 'M' : 'T'} N=${r.depth}`;
}

const anchor = (s: SettingView, what: string): string => `${s.key}-${what}`.replace(/[^A-Za-z0-9_-]/g, '_');

function labelOf(run: RunView, method: string): string {
  for (const s of run.settings) if (s.results.methods[method]) return s.results.methods[method].label;
  return method;
}

/** Method names in order of first appearance across the settings. */
function methodOrder(run: RunView): string[] {
  const out: string[] = [];
  for (const s of run.settings) for (const m of Object.keys(s.results.methods)) if (!out.includes(m)) out.push(m);
  return out;
}

/** ToolPolicy: tool exact match, argument score and overall of a method's saved outputs. */
function toolParts(s: SettingView, method: string): { tool: number; args: number; overall: number } | null {
  const acc = s.accuracy[method];
  if (!acc || acc.items.length === 0) return null;
  const byId = new Map(s.test.map((r) => [r.id, r]));
  let tool = 0, args = 0, overall = 0, n = 0;
  for (const it of acc.items) {
    const r = byId.get(it.id);
    if (!r || r.task !== 'tool') continue;
    const sc = scoreToolCall(it.output, r.target);
    tool += sc.toolCorrect ? 1 : 0;
    args += sc.argScore;
    overall += sc.score;
    n++;
  }
  return n ? { tool: tool / n, args: args / n, overall: overall / n } : null;
}

// ---- sections --------------------------------------------------------------------------------------

function mainTable(run: RunView): string {
  const methods = methodOrder(run);
  const head = ['method'];
  for (const s of run.settings) {
    if (s.results.setting === 'tool') head.push(`${esc(settingTitle(s))}<br><small>tool acc</small>`, `${esc(settingTitle(s))}<br><small>arg score</small>`, `${esc(settingTitle(s))}<br><small>overall</small>`);
    else head.push(`${esc(settingTitle(s))}<br><small>ours, n = ${esc(Object.values(s.results.methods)[0]?.n ?? 0)}</small>`);
  }
  head.push('paper -T<br><small>N=6</small>', 'paper -M<br><small>N=6</small>');
  // the best trained row per column is bold (baselines and in-context excluded)
  const columns: (number | null)[][] = methods.map((m) => run.settings.flatMap((s) => {
    const r = s.results.methods[m];
    if (s.results.setting === 'tool') {
      const t = toolParts(s, m);
      return [t?.tool ?? null, t?.args ?? null, r?.accuracy ?? null];
    }
    return [r?.accuracy ?? null];
  }));
  const best = columns[0]?.map((_, c) => Math.max(...columns.map((row, i) => (methods[i] === 'in-context' ? -1 : row[c] ?? -1)))) ?? [];
  const rows = methods.map((m, i) => [
    esc(labelOf(run, m)),
    ...columns[i].map((x, c) => (x !== null && x === best[c] && x > 0 ? `<b>${pct(x)}</b>` : pct(x))),
    PAPER_MAIN[m] ? `${PAPER_MAIN[m].T.toFixed(2)}%` : '—',
    PAPER_MAIN[m] ? `${PAPER_MAIN[m].M.toFixed(2)}%` : '—',
  ]);
  for (const [name, key] of [['majority-case baseline', 'majority'], ['majority case, natural sampling', 'naturalMajority'], ['uniform-random baseline', 'random']] as const) {
    // runs made before the natural-sampling baseline existed have no naturalMajority
    const v = (s: (typeof run.settings)[number]): number | null => s.results.baselines[key] ?? null;
    rows.push([`<i>${name}</i>`, ...run.settings.flatMap((s) => (s.results.setting === 'tool' ? ['', '', pct(v(s))] : [pct(v(s))])), '—', '—']);
  }
  return `${table(head, rows, 'main')}
<p class="note">Accuracy on held-out test data without the policy in context (the in-context row: the base model with the policy in the prompt), greedy decoding. Paper: Qwen2.5-VL-7B at N = 6 (docs/trimpi.md section 1). ${PAPER_NOTES.map(esc).join(' ')}</p>`;
}

/** A label without its parenthetical ("in-context (policy in prompt, no MPI)" → "in-context"), for plot axes. */
const shortLabel = (label: string): string => label.replace(/\s*\(.*\)\s*$/, '');

async function accuracyPlot(run: RunView): Promise<string> {
  const order = methodOrder(run).map((m) => shortLabel(labelOf(run, m)));
  const rows = run.settings.flatMap((s) => [
    ...Object.entries(s.results.methods).map(([, r]) => ({ x: shortLabel(r.label), group: settingTitle(s), value: r.accuracy })),
    { x: 'majority baseline', group: settingTitle(s), value: s.results.baselines.majority },
    { x: 'random baseline', group: settingTitle(s), value: s.results.baselines.random },
  ]);
  if (rows.length === 0) return '';
  return figure(await renderSvg(groupedBarSpec(rows, { xTitle: 'method', yTitle: 'accuracy', groupTitle: 'setting', percent: true, xOrder: [...order, 'majority baseline', 'random baseline'] })), 'Accuracy per method without the policy in context, with the baselines.');
}

function overrideTable(run: RunView, s: SettingView): string {
  const ev = s.evals?.override ?? {};
  const col = s.results.setting === 'clevr-m' ? 'M' : 'T';
  return table(['method', 'follows the new policy', 'follows it where it changes the answer', 'answers by the old policy', 'n (changed)', `paper (${s.results.setting === 'tool' ? '—' : `-${col}`})`],
    Object.entries(ev).map(([m, r]) => [esc(labelOf(run, m)), pct(r.follow), pct(r.followChanged), pct(r.old), `${r.n} (${r.changed})`,
      PAPER_OVERRIDE[m] && s.results.setting !== 'tool' ? `${PAPER_OVERRIDE[m][col].toFixed(2)}%` : '—']));
}

function referralTable(run: RunView, s: SettingView): string {
  const ev = s.evals?.referral ?? {};
  const tool = s.results.setting === 'tool';
  const head = tool ? ['method', 'referral (0–10)', 'rules exist', 'right rule', 'right version', 'n'] : ['method', 'referral (0–10)', 'existence', 'quote', 'branch', 'path', 'n'];
  return table(head, Object.entries(ev).map(([m, r]) => tool
    ? [esc(labelOf(run, m)), fix(r.score), pct(r.existence, 0), pct(r.rule, 0), pct(r.version, 0), String(r.n)]
    : [esc(labelOf(run, m)), fix(r.score), pct(r.existence, 0), pct(r.quote, 0), pct(r.branch, 0), pct(r.path, 0), String(r.n)]));
}

function inContextTable(run: RunView, s: SettingView): string {
  const ev = s.evals?.inContextAfterMpi ?? {};
  return table(['method', 'without the policy', 'with the policy put back', 'Δ (points)', 'n'],
    Object.entries(ev).map(([m, r]) => [esc(labelOf(run, m)), pct(r.withoutPolicy), pct(r.withPolicy), signedPct(r.withoutPolicy === null ? null : r.withPolicy - r.withoutPolicy), String(r.n)]));
}

function forgettingTable(run: RunView, s: SettingView): string {
  const ev = s.evals?.forgetting ?? {};
  const base = ev.base;
  const groups = [...new Set(Object.values(ev).flatMap((r) => Object.keys(r.groups)))].sort();
  return table(['model', 'SceneQA', 'Δ vs base', 'in-context policies', 'Δ vs base', ...groups.map(esc)],
    Object.entries(ev).map(([m, r]) => [m === 'base' ? '<i>base (stage 0)</i>' : esc(labelOf(run, m)), pct(r.sceneqa), m === 'base' || !base ? '' : signedPct(r.sceneqa - base.sceneqa),
      pct(r.policy), m === 'base' || !base ? '' : signedPct(r.policy - base.policy), ...groups.map((g) => (r.groups[g] ? `${pct(r.groups[g].accuracy, 0)} <small>(${r.groups[g].n})</small>` : '—'))]));
}

function branchingTables(run: RunView, s: SettingView): string {
  const ev = s.evals?.branching ?? {};
  const summary = table(['method', 'ids per response', 'ids per gold CoT', 'mean |Δ ids|', 'same path as gold', 'n'],
    Object.entries(ev).map(([m, r]) => [esc(labelOf(run, m)), fix(r.meanResponse), fix(r.meanGold), fix(r.meanAbsDiff), pct(r.samePath, 0), String(r.n)]));
  const methods = Object.keys(ev);
  const ids = [...new Set(methods.flatMap((m) => Object.keys(ev[m].byId)))].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  if (ids.length === 0) return summary;
  const goldOf = (id: string): number => Math.max(0, ...methods.map((m) => ev[m].byId[id]?.gold ?? 0));
  const dist = table([s.results.setting === 'tool' ? 'rule' : 'condition', 'gold CoTs', ...methods.map((m) => esc(labelOf(run, m)))],
    ids.map((id) => [esc(id), String(goldOf(id)), ...methods.map((m) => String(ev[m].byId[id]?.response ?? 0))]), 'compact');
  return `${summary}<details><summary>How many responses reference each ${s.results.setting === 'tool' ? 'rule' : 'condition'} (gold: the gold CoTs of the same items)</summary>${dist}</details>`;
}

/** Efficiency over the run: prompt tokens per setting and depth (the same for every setting: shown once) and the prefill measured on each setting. */
function efficiencyTables(run: RunView): string {
  const withEff = run.settings.filter((s) => s.evals?.efficiency);
  if (withEff.length === 0) return '<p class="empty">no entries yet</p>';
  const tokens = table(['setting', 'depth', 'tokens without', 'tokens with', 'saved', 'positions without', 'positions with', 'saved'],
    withEff[0].evals!.efficiency!.tokens.map((r) => [esc(r.setting), r.depth === null ? '—' : String(r.depth), fix(r.tokens.without, 1), fix(r.tokens.with, 1), pct(r.tokenReduction), fix(r.positions.without, 0), fix(r.positions.with, 0), pct(r.positionReduction)]));
  const prefill = table(['setting', 'prompts (one batch)', 'timed forwards', 'positions without', 'positions with', 'prefill without', 'prefill with', 'tokens saved', 'time saved'],
    withEff.flatMap((s) => {
      const p = s.evals!.efficiency!.prefill;
      return p ? [[esc(settingTitle(s)), String(p.prompts), String(p.repeats), fix(p.without.positions, 0), p.with ? fix(p.with.positions, 0) : 'does not fit', `${fix(p.without.seconds * 1000, 1)} ms`,
        p.with ? `${fix(p.with.seconds * 1000, 1)} ms` : '—', pct(p.tokenReduction), pct(p.timeReduction)]] : [];
    }));
  return `<p>Prompt tokens with vs without the policy in context (the seed's target policies; <code>&lt;image&gt;</code> counts 1 token; decoder positions expand each image to its patches). The paper saves up to ${PAPER_EFFICIENCY.tokenReduction}% of the prompt tokens and ${PAPER_EFFICIENCY.prefillReduction}% of the prefill time.</p>${tokens}
<p>Prefill on each setting's test prompts with the base model: one forward over the batch (last position's logits, no gradients) up to the awaited readback, the median of the timed forwards after an untimed warm-up.</p>${prefill}`;
}

async function efficiencyPlot(run: RunView): Promise<string> {
  const withEff = run.settings.filter((s) => s.evals?.efficiency);
  if (withEff.length === 0) return '';
  const rows = withEff[0].evals!.efficiency!.tokens.flatMap((r) => {
    const x = r.depth === null ? r.setting : `${r.setting} N=${r.depth}`;
    return [
      { panel: 'prompt tokens', x, group: 'without policy', value: r.tokens.without }, { panel: 'prompt tokens', x, group: 'with policy', value: r.tokens.with },
      { panel: 'decoder positions', x, group: 'without policy', value: r.positions.without }, { panel: 'decoder positions', x, group: 'with policy', value: r.positions.with },
    ];
  });
  for (const s of withEff) {
    const p = s.evals!.efficiency!.prefill;
    if (!p) continue;
    rows.push({ panel: 'prefill time (ms)', x: settingTitle(s), group: 'without policy', value: p.without.seconds * 1000 });
    if (p.with) rows.push({ panel: 'prefill time (ms)', x: settingTitle(s), group: 'with policy', value: p.with.seconds * 1000 });
  }
  const spec = panelBarSpec(rows, { groupTitle: 'prompt', panelOrder: ['prompt tokens', 'decoder positions', 'prefill time (ms)'], groupOrder: ['without policy', 'with policy'] });
  return figure(await renderSvg(spec), 'Efficiency: prompt tokens and decoder positions per setting and depth, and the measured prefill time, with vs without the policy in context.');
}

const RL_METRICS: readonly (keyof RlStepMetrics)[] = ['reward', 'rewardWithPolicy', 'accuracy', 'accuracyWithPolicy', 'klRef', 'approxKl', 'clipFracLow', 'clipFracHigh', 'responseLength', 'entropy'];

async function trainingPlots(s: SettingView): Promise<string> {
  const out: string[] = [];
  const loss = Object.entries(s.supervised).flatMap(([stage, ms]) => ms.filter((m) => Number.isFinite(m.loss)).map((m) => ({ stage, step: m.step, loss: m.loss })));
  if (loss.length) out.push(figure(await renderSvg(lossSpec(loss)), 'Training loss per step of each supervised stage (stages/&lt;stage&gt;/metrics.jsonl).'));
  const rl = Object.entries(s.rl).flatMap(([stage, ms]) => ms.flatMap((m) => RL_METRICS.flatMap((k) => {
    const v = m[k];
    return typeof v === 'number' && Number.isFinite(v) ? [{ stage, step: m.step, metric: k, value: v }] : [];
  })));
  if (rl.length) out.push(figure(await renderSvg(rlSpec(rl, RL_METRICS)), 'RL per rollout step: reward and accuracy of the no-policy half and (PoRo) of the policy-in-context half, KL to the reference, approximate KL to the old policy, clip fractions, mean response length, entropy of π_old.'));
  return out.join('\n') || '<p class="empty">no training metrics</p>';
}

// ---- gallery ---------------------------------------------------------------------------------------

const norm = (t: string): string => t.trim().replace(/\s+/g, ' ');

/** A ClevrPolicy output with each cited step marked: wrong steps (against the policy or the gold CoT) highlighted with the reasons. */
export function highlightSteps(output: string, gold: string, policy: Pick<PolicyRecord, 'tree'>): string {
  const steps = parseCitedSteps(output);
  const goldSteps = parseCitedSteps(gold);
  const verdicts = referralScore(output, policy).verdicts;
  let html = '';
  let pos = 0;
  steps.forEach((s, k) => {
    const v = verdicts[k];
    const why: string[] = [];
    if (v?.unknownId) why.push(`Condition ${s.id} is not in the policy`);
    else if (v?.wrongCheck) why.push("the quoted check is not the policy's");
    if (v?.wrongBranch && !v.unknownId) why.push('not the branch the policy prescribes for the stated observation');
    if (v?.brokenPath) why.push('does not follow from the previous step');
    const g = goldSteps[k];
    if (!g) why.push('the gold CoT has no such step');
    else if (norm(g.text) !== norm(s.text)) why.push(`the gold step is: ${norm(g.text)}`);
    html += esc(output.slice(pos, s.start));
    const text = esc(output.slice(s.start, s.end));
    html += why.length ? `<mark class="wrong" title="${esc(why.join('; '))}">${text}</mark>` : `<span class="right">${text}</span>`;
    pos = s.end;
  });
  return html + esc(output.slice(pos));
}

function imageTag(s: SettingView, path: string): string {
  const file = join(s.dir, 'data', path);
  if (!existsSync(file)) return `<span class="empty">${esc(path)} missing</span>`;
  return `<img alt="${esc(path)}" title="${esc(path)}" src="data:image/png;base64,${readFileSync(file).toString('base64')}">`;
}

function gallery(run: RunView, s: SettingView, count: number): string {
  const methods = [...Object.keys(s.results.methods).filter((m) => s.accuracy[m]), ...Object.keys(s.accuracy).filter((m) => !s.results.methods[m])];
  const first = methods.length ? s.accuracy[methods[0]].items.map((it) => it.id) : s.test.map((r) => r.id);
  const byId = new Map(s.test.map((r) => [r.id, r]));
  const ids = first.filter((id) => byId.has(id)).slice(0, count);
  if (ids.length === 0) return '<p class="empty">no test items</p>';
  return ids.map((id) => {
    const r = byId.get(id)!;
    const policy = r.task === 'clevr' ? s.policies.get(r.policy) : undefined;
    const goldRow = ['<i>gold</i>', '', `<div class="out">${policy ? highlightSteps(r.response, r.response, policy) : esc(r.response)}</div>`];
    const rows = methods.flatMap((m) => {
      const it = s.accuracy[m].items.find((x) => x.id === id);
      if (!it) return [];
      const body = policy ? highlightSteps(it.output, r.response, policy) : esc(it.output);
      const mark = it.score >= 1 ? '<span class="yes">✓</span>' : it.score > 0 ? `<span class="part">${it.score.toFixed(2)}</span>` : '<span class="no">✗</span>';
      return [[`${esc(labelOf(run, m))}${s.accuracy[m].withPolicy ? ' <small>(policy in context)</small>' : ''}`, mark, `<div class="out">${body || '<i>(empty)</i>'}</div>`]];
    });
    const answer = r.task === 'clevr' ? `Case ${r.case}` : r.target.name;
    const title = `${esc(r.task === 'clevr' ? r.policy : r.template)}: gold answer <b>${esc(answer)}</b> <small>(${esc(r.id)})</small>`;
    const context = r.task === 'tool' ? `<details><summary>prompt</summary><pre class="prompt">${esc(r.prompt)}</pre></details>` : '';
    return `<div class="item"><div class="images">${r.images.map((p) => imageTag(s, p)).join('')}</div><div class="detail"><h4>${title}</h4>${context}
${table(['method', '', 'reasoning and answer'], [goldRow, ...rows], 'gallery')}</div></div>`;
  }).join('\n');
}

// ---- configuration -----------------------------------------------------------------------------------

function configSection(s: SettingView): string {
  const r = s.results;
  const run = Object.entries(s.run).filter(([k]) => !['seed', 'scale', 'base'].includes(k)).map(([k, v]) => `<dt>${esc(k)}</dt><dd><code>${esc(typeof v === 'string' ? v : JSON.stringify(v))}</code></dd>`).join('');
  const stages = table(['stage', 'from', 'steps', 'wall', 'positions/s', 'rollout tokens/s', 'peak GPU', 'final loss'],
    Object.values(r.stages).map((st) => [esc(st.stage), esc(st.from), String(st.steps), `${fix(st.seconds, 1)} s`, fix(st.positionsPerSecond, 0), fix(st.rolloutTokensPerSecond, 0), `${fix(st.peakGpuBytes / 2 ** 20, 0)} MiB`, fix(st.finalLoss, 3)]));
  const evals = table(['method', 'accuracy eval wall', 'prompt tokens', 'response tokens', 'format'],
    Object.entries(r.methods).map(([, m]) => [esc(m.label), `${fix(m.seconds, 1)} s`, fix(m.promptTokens, 1), fix(m.responseTokens, 1), pct(m.format, 0)]));
  const suite = s.evals ? table(['suite entry', 'wall'], Object.entries(s.evals.seconds).map(([k, v]) => [esc(k), `${fix(v, 1)} s`]), 'compact') : '';
  const errors = s.evals && Object.keys(s.evals.errors).length ? `<p class="error">Failed suite entries: ${Object.entries(s.evals.errors).map(([k, v]) => `${esc(k)}: ${esc(v)}`).join('; ')}</p>` : '';
  return `<dl class="config"><dt>device</dt><dd>${esc(r.device)}</dd><dt>seed</dt><dd>${esc(r.seed)}</dd><dt>scale</dt><dd>${esc(r.scale)}</dd><dt>base model</dt><dd><code>${esc(r.base)}</code></dd><dt>wall time</dt><dd>${fix(r.wallSeconds, 0)} s (training and accuracy evaluation)</dd>${run}</dl>
<h4>Stages: wall time and throughput</h4>${stages}<h4>Accuracy evaluations</h4>${evals}${suite ? `<details><summary>Suite wall times</summary>${suite}</details>` : ''}${errors}`;
}

// ---- the page -------------------------------------------------------------------------------------------

const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:0;background:#fafafa}
main{max-width:1180px;margin:0 auto;padding:24px 28px 60px;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:36px 0 10px;border-bottom:2px solid #e6e6e6;padding-bottom:4px}
h3{font-size:16px;margin:24px 0 8px}h4{font-size:14px;margin:14px 0 6px}
.sub{color:#666;margin:0 0 16px}nav{font-size:13px;margin:8px 0 20px}nav a{margin-right:12px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}th,td{border:1px solid #e3e3e3;padding:4px 8px;text-align:right;vertical-align:top}
th{background:#f4f6f8;font-weight:600}td:first-child,th:first-child{text-align:left}table.main td:first-child{white-space:nowrap}
table.gallery{width:100%}table.gallery td,table.gallery th{text-align:left}table.gallery td:first-child{width:190px}table.gallery td:nth-child(2){text-align:center;width:36px}
.note{color:#555;font-size:12.5px;max-width:980px}.empty{color:#999;font-style:italic}.error{color:#b00}
figure.plot{margin:10px 0 18px;overflow-x:auto}figure.plot svg{max-width:100%;height:auto}figcaption{font-size:12.5px;color:#555}
.item{display:flex;gap:16px;border-top:1px solid #eee;padding:12px 0}.images img{width:128px;height:128px;image-rendering:pixelated;border:1px solid #ccc;margin:0 6px 6px 0;display:block}
.detail{flex:1;min-width:0}.out{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;white-space:pre-wrap;word-break:break-word}
pre.prompt{font-size:12px;background:#f6f6f6;padding:6px;white-space:pre-wrap;margin:4px 0}
mark.wrong{background:#ffd6d6;border-bottom:2px solid #d33;cursor:help}span.right{background:#e4f6e4}
.yes{color:#1a7f37;font-weight:700}.no{color:#c62828;font-weight:700}.part{color:#b26a00;font-weight:700}
dl.config{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;font-size:13px}dl.config dt{color:#666}dl.config dd{margin:0}
details{margin:6px 0}summary{cursor:pointer;color:#345}
`;

/** The report page of a run (every setting in it), as one self-contained HTML string. */
export async function renderReport(run: RunView, o: ReportOptions = {}): Promise<string> {
  const count = o.galleryItems ?? 4;
  const now = (o.now ?? new Date()).toISOString().replace('T', ' ').slice(0, 16);
  const devices = [...new Set(run.settings.map((s) => s.results.device))];
  const parts: string[] = [];
  parts.push(`<h1>TriMPI miniature: ${esc(run.name)}</h1>
<p class="sub">${run.settings.map((s) => esc(settingTitle(s))).join(', ') || 'no finished setting'} · scale ${esc([...new Set(run.settings.map((s) => s.results.scale))].join(', '))} · ${esc(devices.join(', '))} · generated ${esc(now)} UTC</p>
<nav><a href="#main">Main table</a><a href="#evals">Evaluations</a><a href="#training">Training</a><a href="#gallery">Gallery</a><a href="#config">Configuration</a></nav>`);
  parts.push(`<h2 id="main">Main table</h2>${mainTable(run)}${await accuracyPlot(run)}`);
  parts.push('<h2 id="evals">Evaluations</h2><p class="note">Held-out data, greedy decoding, seeded. Definitions: docs/referral.md (referral and branching), src/trimpi/eval/*.ts (each evaluation\'s doc comment).</p>');
  for (const s of run.settings) {
    parts.push(`<h3 id="${anchor(s, 'evals')}">${esc(settingTitle(s))}</h3>
<h4>Policy override (a new policy under the same name in context, paper Fig 10)</h4>${overrideTable(run, s)}
<h4>Policy referral (exact, 0–10)</h4>${referralTable(run, s)}
<h4>Policy in context after MPI (paper Table 4)</h4>${inContextTable(run, s)}
<h4>Forgetting (SceneQA and in-context following of fresh random policies)</h4>${forgettingTable(run, s)}
<h4>Branching errors (condition ids referenced vs the gold CoT)</h4>${branchingTables(run, s)}`);
  }
  parts.push(`<h3 id="efficiency">Efficiency</h3>${efficiencyTables(run)}${await efficiencyPlot(run)}`);
  parts.push('<h2 id="training">Training</h2>');
  for (const s of run.settings) parts.push(`<h3>${esc(settingTitle(s))}</h3>${await trainingPlots(s)}`);
  parts.push('<h2 id="gallery">Gallery</h2><p class="note">Test images with the gold answer and each method\'s reasoning and answer. Cited steps that agree with the policy and the gold CoT are green; wrong steps are red (hover for why).</p>');
  for (const s of run.settings) parts.push(`<h3>${esc(settingTitle(s))}</h3>${gallery(run, s, count)}`);
  parts.push('<h2 id="config">Configuration, device, wall times and throughput</h2>');
  for (const s of run.settings) parts.push(`<h3>${esc(settingTitle(s))}</h3>${configSection(s)}`);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>TriMPI report: ${esc(run.name)}</title><style>${STYLE}</style></head>
<body><main>
${parts.join('\n')}
</main></body></html>
`;
}
