// The evaluation suite of a finished run (docs/trimpi.md section 6, issue 10) and its HTML report:
// `trimpi eval DIR` and `trimpi report DIR`, also called at the end of `trimpi run`.
//
//   runs/NAME/<setting>/evals.json   override, referral, policy in context after MPI, forgetting,
//                                    efficiency, branching (src/trimpi/eval/results.ts); one entry
//                                    per (evaluation, method), written as soon as it is done: an
//                                    interrupted suite resumes where it stopped
//   runs/NAME/report.html            one self-contained page over every setting of the run
import { existsSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { check, TrimpiError } from '../gpu/errors.js';
import { init } from '../gpu/device.js';
import { loadVisionLanguageModel, readManifest } from '../nn/checkpoint.js';
import type { VisionLanguageModel } from '../nn/vlm.js';
import { ClevrRecord, ToolRecord } from './data/export.js';
import type { PolicyPruning } from './data/clevr_policy.js';
import { Tokenizer, defaultTokenizer } from './data/tokenizer.js';
import { MpiData } from './stages/mpi_data.js';
import { AccuracyResult, evaluateAccuracy } from './eval/accuracy.js';
import { branchingErrors } from './eval/branching.js';
import { measurePrefill, promptTokenRows } from './eval/efficiency.js';
import { evaluateForgetting } from './eval/forgetting.js';
import { evaluateOverride } from './eval/override.js';
import { ReferralScore, ToolReferralScore, referralScore, summarizeReferral, toolReferralScore } from './eval/referral.js';
import { EvalSuiteResults, emptySuiteResults } from './eval/results.js';
import { writeReport } from './report/index.js';
import { METHODS, METHOD_NAMES, MethodName, SCALES, ScaleConfig, contextFor } from './run.js';

/** How much of each evaluation to run, per scale (the accuracy evaluation's limit and lengths come from the scale). */
export const SUITE_SIZES: Readonly<Record<keyof typeof SCALES, { forgettingItems: number; prefillPrompts: number; prefillRepeats: number }>> = {
  tiny: { forgettingItems: 1, prefillPrompts: 2, prefillRepeats: 1 },
  demo: { forgettingItems: 8, prefillPrompts: 8, prefillRepeats: 3 },
  small: { forgettingItems: 25, prefillPrompts: 16, prefillRepeats: 5 },
  gpu: { forgettingItems: 100, prefillPrompts: 32, prefillRepeats: 5 },
};

/** One setting of a run, opened for the suite. */
export interface SuiteContext {
  /** runs/NAME/<setting>. */
  root: string;
  data: MpiData;
  tok: Tokenizer;
  /** The run's methods that have an accuracy evaluation (eval/<method>.json). */
  methods: MethodName[];
  /** The base checkpoint (the in-context row's model, forgetting's and prefill's reference). */
  base: string;
  /** The context the run's models are loaded with (contextFor; undefined: each checkpoint's own). */
  maxPositions?: number;
  seed: number;
  scale: ScaleConfig;
  sizes: (typeof SUITE_SIZES)[keyof typeof SUITE_SIZES];
  log: (line: string) => void;
}

function writeJsonAtomic(path: string, value: unknown): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(value, null, 1) + '\n');
  renameSync(tmp, path);
}

function modelDirOf(ctx: SuiteContext, m: MethodName | 'base'): string {
  const stage = m === 'base' ? 'base' : METHODS[m].stage;
  return stage === 'base' ? ctx.base : join(ctx.root, 'stages', stage, 'model');
}

/** Opens a setting directory of a finished (or partly finished) run from its run.json. */
export async function openSuiteContext(root: string, tok: Tokenizer, log: (line: string) => void): Promise<SuiteContext> {
  const op = 'trimpi eval';
  const runPath = join(root, 'run.json');
  check(existsSync(runPath), op, () => `${root} is not a setting directory of a run (no run.json)`);
  const run = JSON.parse(readFileSync(runPath, 'utf8')) as { setting: 'clevr-t' | 'clevr-m' | 'tool'; depth: number; seed: number; pruning?: PolicyPruning; scale: keyof typeof SCALES; base: string; overrides: Partial<ScaleConfig> | null };
  const scale: ScaleConfig = { ...SCALES[run.scale], ...(run.overrides ?? {}) };
  const manifest = JSON.parse(readFileSync(join(root, 'data', 'manifest.json'), 'utf8')) as { imageSize: number };
  const data = await MpiData.open(join(root, 'data'), { setting: run.setting, depth: run.depth, seed: run.seed, pruning: run.pruning ?? 'strict', imageSize: manifest.imageSize, ...scale.data });
  const methods = METHOD_NAMES.filter((m) => existsSync(join(root, 'eval', `${m}.json`)));
  return { root, data, tok, methods, base: run.base, maxPositions: contextFor(run.setting, run.base), seed: run.seed, scale, sizes: SUITE_SIZES[run.scale], log };
}

/** The referral scores of a method's saved test outputs (clevr: condition citations; tool: version rules). */
function referralOf(ctx: SuiteContext, acc: AccuracyResult): (ReferralScore | ToolReferralScore)[] {
  const byId = new Map(ctx.data.test.map((r) => [r.id, r]));
  return acc.items.flatMap((it): (ReferralScore | ToolReferralScore)[] => {
    const r = byId.get(it.id);
    if (!r) return [];
    if (r.task === 'clevr') return [referralScore(it.output, ctx.data.policyOf(r as ClevrRecord))];
    // tool: only where the gold call's version is decided by a rule
    return (r as ToolRecord).rule === null ? [] : [toolReferralScore(it.output, r as ToolRecord)];
  });
}

/**
 * Runs every evaluation of the suite that evals.json does not hold yet for the setting of `ctx`,
 * writing evals.json after each entry; returns the complete results. Failed entries are logged,
 * recorded under `errors` and retried on the next call.
 */
export async function evaluateSuite(ctx: SuiteContext): Promise<EvalSuiteResults> {
  const path = join(ctx.root, 'evals.json');
  const { spec } = ctx.data;
  const res: EvalSuiteResults = existsSync(path)
    ? { ...emptySuiteResults(spec.setting, spec.depth, spec.seed), ...(JSON.parse(readFileSync(path, 'utf8')) as Partial<EvalSuiteResults>), errors: {} }
    : emptySuiteResults(spec.setting, spec.depth, spec.seed);
  const save = (): void => writeJsonAtomic(path, res);
  const accuracy = (m: MethodName): AccuracyResult => JSON.parse(readFileSync(join(ctx.root, 'eval', `${m}.json`), 'utf8')) as AccuracyResult;
  const limit = ctx.scale.evalLimit || undefined;
  const maxNewTokens = ctx.scale.evalMaxNewTokens;

  /** Runs one entry unless present; its time and any failure are recorded. */
  const entry = async <T>(evaluation: string, key: string, present: boolean, run: () => Promise<T> | T, store: (v: T) => void): Promise<void> => {
    if (present) return;
    const t0 = performance.now();
    try {
      store(await run());
      res.seconds[`${evaluation}/${key}`] = (performance.now() - t0) / 1000;
      delete res.errors[`${evaluation}/${key}`];
      ctx.log(`suite ${evaluation} ${key}: done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    } catch (e) {
      if (!(e instanceof TrimpiError)) throw e;
      res.errors[`${evaluation}/${key}`] = e.message;
      ctx.log(`suite ${evaluation} ${key}: failed: ${e.message}`);
    }
    save();
  };

  // from the saved outputs of the accuracy evaluation: no model needed
  const gold = new Map(ctx.data.test.map((r) => [r.id, r.response]));
  for (const m of ctx.methods) {
    await entry('referral', m, m in res.referral, () => summarizeReferral(referralOf(ctx, accuracy(m))), (v) => (res.referral[m] = v));
    await entry('branching', m, m in res.branching, () => branchingErrors(accuracy(m).items.filter((it) => gold.has(it.id)).map((it) => ({ response: it.output, gold: gold.get(it.id)! }))), (v) => (res.branching[m] = v));
  }

  // one model at a time: the base, then each method's
  const models: (MethodName | 'base')[] = ['base', ...ctx.methods.filter((m) => METHODS[m].stage !== 'base')];
  for (const owner of models) {
    const methods = owner === 'base' ? ctx.methods.filter((m) => METHODS[m].stage === 'base') : [owner];
    const needs = (owner === 'base' && (!res.efficiency || !('base' in res.forgetting))) || (owner !== 'base' && !(owner in res.forgetting)) ||
      methods.some((m) => !(m in res.override) || (!METHODS[m].withPolicy && !(m in res.inContextAfterMpi)));
    if (!needs) continue;
    const dir = modelDirOf(ctx, owner);
    let model: VisionLanguageModel;
    try {
      model = loadVisionLanguageModel(dir, { maxPositions: ctx.maxPositions });
    } catch (e) {
      if (!(e instanceof TrimpiError)) throw e;
      res.errors[`model/${owner}`] = e.message;
      ctx.log(`suite: cannot load the model of ${owner} (${dir}): ${e.message}`);
      save();
      continue;
    }
    try {
      if (owner === 'base') {
        const patches = model.patchesPerImage;
        await entry('efficiency', 'base', res.efficiency !== null, async () => ({
          tokens: promptTokenRows(ctx.tok, { seed: ctx.seed, patches }),
          prefill: await measurePrefill(model, ctx.tok, ctx.data, { prompts: ctx.sizes.prefillPrompts, repeats: ctx.sizes.prefillRepeats }),
        }), (v) => (res.efficiency = v));
      }
      await entry('forgetting', owner, owner in res.forgetting,
        () => evaluateForgetting(model, ctx.tok, { seed: ctx.seed, n: ctx.sizes.forgettingItems, maxNewTokens }), (v) => (res.forgetting[owner] = v));
      for (const m of methods) {
        await entry('override', m, m in res.override,
          () => evaluateOverride(model, ctx.tok, ctx.data, { seed: ctx.seed + 1, maxNewTokens, limit }), (v) => (res.override[m] = v));
        if (METHODS[m].withPolicy) continue;
        await entry('inContextAfterMpi', m, m in res.inContextAfterMpi, async () => {
          const r = await evaluateAccuracy(model, ctx.tok, ctx.data, { withPolicy: true, maxNewTokens, limit });
          return { withPolicy: r.accuracy, withoutPolicy: accuracy(m).accuracy, format: r.format, n: r.n };
        }, (v) => (res.inContextAfterMpi[m] = v));
      }
    } finally {
      model.dispose();
    }
  }
  save();
  return res;
}

/** The setting directories of a run directory (those with a run.json), or the directory itself if it is one. */
export function settingDirs(dir: string): string[] {
  if (existsSync(join(dir, 'run.json'))) return [dir];
  check(existsSync(dir), 'trimpi eval', () => `${dir} does not exist`);
  return readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory() && existsSync(join(dir, d.name, 'run.json'))).map((d) => join(dir, d.name)).sort();
}

/**
 * The end of `trimpi run`: the suite for the setting just run (root), then the report over every
 * setting of the run directory (out).
 */
export async function suiteAfterRun(out: string, root: string, tok: Tokenizer, log: (line: string) => void, withSuite = true): Promise<{ evals: EvalSuiteResults | null; report: string }> {
  const evals = withSuite ? await evaluateSuite(await openSuiteContext(root, tok, log)) : null;
  const report = await writeReport(out);
  log(`report: ${report}`);
  return { evals, report };
}

/** `trimpi eval --help`. */
export const EVAL_USAGE = `usage: trimpi eval DIR [--quiet]

Runs the evaluation suite on a run directory made by trimpi run (DIR = runs/NAME, or one setting
directory of it): policy override, policy referral, the policy in context after MPI, forgetting,
efficiency and branching errors, for every method that has an accuracy evaluation. Writes
<setting>/evals.json one entry at a time (a killed suite resumes) and then DIR/report.html.`;

/** `trimpi report --help`. */
export const REPORT_USAGE = `usage: trimpi report DIR

Writes DIR/report.html for a run directory made by trimpi run (DIR = runs/NAME): one self-contained
page (tables, SVG plots, inline images) that opens offline.`;

function usageError(e: unknown, usage: string): number {
  console.error(`${(e as Error).message}\n\n${usage}`);
  return 2;
}

/** `trimpi eval DIR`: 0 done, 2 bad arguments, 1 failure. */
export async function runEvalCommand(argv: string[]): Promise<number> {
  const args = argv.filter((a) => a !== '--quiet');
  if (args.includes('--help') || args.includes('-h')) {
    console.log(EVAL_USAGE);
    return 0;
  }
  const quiet = argv.includes('--quiet');
  let dirs: string[];
  try {
    check(args.length === 1 && !args[0].startsWith('-'), 'trimpi eval', () => (args.length === 0 ? 'DIR is required' : `unexpected arguments: ${args.join(' ')}`));
    dirs = settingDirs(args[0]);
    check(dirs.length > 0, 'trimpi eval', () => `${args[0]} holds no run (no <setting>/run.json)`);
    for (const d of dirs) readManifest(JSON.parse(readFileSync(join(d, 'run.json'), 'utf8')).base as string);
  } catch (e) {
    return usageError(e, EVAL_USAGE);
  }
  await init();
  const tok = defaultTokenizer();
  const log = quiet ? () => undefined : (l: string) => console.error(l);
  for (const d of dirs) {
    const r = await evaluateSuite(await openSuiteContext(d, tok, log));
    console.log(`${basename(d)}: evals.json with ${Object.keys(r.override).length} override, ${Object.keys(r.forgetting).length} forgetting, ${Object.keys(r.inContextAfterMpi).length} in-context-after-MPI entries${Object.keys(r.errors).length ? `; errors: ${Object.keys(r.errors).join(', ')}` : ''}`);
  }
  const out = dirs.length === 1 && dirs[0] === args[0] ? join(args[0], '..') : args[0];
  console.log(`wrote ${await writeReport(out)}`);
  return 0;
}

/** `trimpi report DIR`: 0 written, 2 bad arguments. */
export async function runReportCommand(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(REPORT_USAGE);
    return 0;
  }
  try {
    check(argv.length === 1 && !argv[0].startsWith('-'), 'trimpi report', () => (argv.length === 0 ? 'DIR is required' : `unexpected arguments: ${argv.join(' ')}`));
    check(settingDirs(argv[0]).length > 0, 'trimpi report', () => `${argv[0]} holds no run (no <setting>/run.json)`);
  } catch (e) {
    return usageError(e, REPORT_USAGE);
  }
  console.log(`wrote ${await writeReport(argv[0])}`);
  return 0;
}
