// `trimpi run`: every method of the paper's table on one setting, from one base checkpoint, as a
// small DAG of stages whose results are cached on disk. Killed at any moment, the same command
// resumes: finished stages and evaluations are skipped, a stage in progress continues from its last
// checkpoint (the data stream of step s depends only on the seed and s).
//
//   runs/NAME/<setting>/data/                the dataset (trimpi data), generated once
//   runs/NAME/<setting>/stages/<stage>/      model/ (final, merged), resume/ (in progress),
//                                            metrics.jsonl (per step), done.json (summary)
//   runs/NAME/<setting>/eval/<method>.json   accuracy of each method (and the in-context baseline)
//   runs/NAME/<setting>/results.json         the table, baselines, stage summaries, config, device
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { check, TrimpiError } from '../gpu/errors.js';
import { currentDevice } from '../gpu/device.js';
import { memoryStats, resetPeak } from '../gpu/stats.js';
import { loadCheckpoint, loadVisionLanguageModel, readManifest, saveCheckpoint, JsonValue } from '../nn/checkpoint.js';
import { Trainer } from '../nn/train.js';
import { applyLora, LoraHandle } from '../nn/lora.js';
import { EOS, Tokenizer } from './data/tokenizer.js';
import { progressBar } from './data/cli.js';
import { rng } from './data/rng.js';
import { GRPO, DAPO, RlAlgorithm } from './losses/configs.js';
import type { PolicyPruning } from './data/clevr_policy.js';
import { MpiData, MpiDataSpec, MpiRecord } from './stages/mpi_data.js';
import { SupervisedConfig, SupervisedKind, SupervisedSequences, supervisedSequences, supervisedSteps, trainSupervised } from './stages/supervised.js';
import { RlConfig, RlItem, RlRunner, RlStepMetrics, RlTask } from './stages/rl.js';
import { sequencePositions, TargetBatch } from './stages/batch.js';
import { AccuracyResult, baselines, evaluateAccuracy } from './eval/accuracy.js';
import type { RunResults, StageSummary } from './eval/results.js';
export type { MethodResult, RunResults, StageSummary } from './eval/results.js';

// ---- the table ---------------------------------------------------------------------------------------

type StageName = 'direct-sft' | 'cot-sft' | 'vm-cpt' | 'vm-cpt+cot-sft' | 'cot-sft+grpo' | 'cot-sft+dapo' | 'trimpi-grpo' | 'trimpi-poro-grpo' | 'trimpi-poro-dapo';

interface StageSpec {
  /** The stage whose final model this one starts from ('base': the base checkpoint). */
  from: StageName | 'base';
  sft?: SupervisedKind;
  rl?: { algorithm: RlAlgorithm; poro: boolean };
}

/** The stages of the table as a DAG: each starts from its `from` stage's final model (or the base). */
export const STAGES: Readonly<Record<StageName, StageSpec>> = {
  'direct-sft': { from: 'base', sft: 'direct-sft' },
  'cot-sft': { from: 'base', sft: 'cot-sft' },
  'vm-cpt': { from: 'base', sft: 'vm-cpt' },
  'vm-cpt+cot-sft': { from: 'vm-cpt', sft: 'cot-sft' },
  'cot-sft+grpo': { from: 'cot-sft', rl: { algorithm: GRPO, poro: false } },
  'cot-sft+dapo': { from: 'cot-sft', rl: { algorithm: DAPO, poro: false } },
  'trimpi-grpo': { from: 'vm-cpt+cot-sft', rl: { algorithm: GRPO, poro: false } },
  'trimpi-poro-grpo': { from: 'vm-cpt+cot-sft', rl: { algorithm: GRPO, poro: true } },
  'trimpi-poro-dapo': { from: 'vm-cpt+cot-sft', rl: { algorithm: DAPO, poro: true } },
};

/** The paper's rows: which model, and whether the policy is in the prompt at evaluation. */
export const METHODS = {
  'in-context': { label: 'in-context (policy in prompt, no MPI)', stage: 'base', withPolicy: true },
  'direct-sft': { label: 'direct SFT', stage: 'direct-sft', withPolicy: false },
  'cot-sft': { label: 'CoT SFT', stage: 'cot-sft', withPolicy: false },
  'vmcpt-cot-sft': { label: 'VM-CPT + CoT SFT', stage: 'vm-cpt+cot-sft', withPolicy: false },
  'cot-sft-grpo': { label: 'CoT SFT + GRPO', stage: 'cot-sft+grpo', withPolicy: false },
  'cot-sft-dapo': { label: 'CoT SFT + DAPO', stage: 'cot-sft+dapo', withPolicy: false },
  'trimpi-grpo': { label: 'TriMPI w/ GRPO (no PoRo)', stage: 'trimpi-grpo', withPolicy: false },
  'trimpi-poro-grpo': { label: 'TriMPI, PoRo-GRPO', stage: 'trimpi-poro-grpo', withPolicy: false },
  'trimpi-poro-dapo': { label: 'TriMPI, PoRo-DAPO', stage: 'trimpi-poro-dapo', withPolicy: false },
} as const satisfies Record<string, { label: string; stage: StageName | 'base'; withPolicy: boolean }>;
/** A row of the paper's table ('in-context', 'cot-sft-grpo', 'trimpi-poro-dapo', …). */
export type MethodName = keyof typeof METHODS;
/** Every method of the paper's table, in the table's order. */
export const METHOD_NAMES = Object.keys(METHODS) as MethodName[];
/** `npm start`'s methods: the demo's four trained rows (plus the in-context baseline). */
export const DEMO_METHODS: MethodName[] = ['in-context', 'direct-sft', 'cot-sft', 'cot-sft-grpo', 'trimpi-poro-grpo'];

// ---- scales: plain data ------------------------------------------------------------------------------

/** Data sizes, SFT and RL hyperparameters and evaluation lengths of one scale. */
export interface ScaleConfig {
  data: Omit<MpiDataSpec, 'setting' | 'depth' | 'seed' | 'imageSize'>;
  /**
   * Per supervised kind: epochs; the rest shared. LoRA's learning rate, 5e-3, is set by the training
   * loss of a demo-scale CoT SFT (60 steps: 0.61 at 1e-3, 0.34 at 5e-3, 0.25 fully fine-tuned; rank 8
   * of a 128-wide model learns slowly). RL's learning rate, 1e-4, is full fine-tuning's after the merge
   * (chosen, not tuned: RL steps are few here).
   */
  sft: Omit<SupervisedConfig, 'kind' | 'epochs' | 'seed'> & {
    epochs: Record<SupervisedKind, number>;
    /** LoRA on every linear layer, merged at the end of the stage (the paper: rank 8); null: full fine-tuning. VM-CPT is always full. */
    lora: { rank: number; alpha: number; lr: number } | null;
  };
  rl: Omit<RlConfig, 'algorithm' | 'poro' | 'seed'>;
  /** Test records evaluated (0: all). */
  evalLimit: number;
  evalMaxNewTokens: number;
}

/**
 * The sizes of a run, as plain data: tiny (the tests, seconds), demo (npm start, minutes on lavapipe),
 * small (results/, an hour or more per setting on lavapipe), gpu (a lent GPU, the paper's sizes).
 */
export const SCALES: Readonly<Record<'tiny' | 'demo' | 'small' | 'gpu', ScaleConfig>> = {
  // the tests: seconds
  tiny: {
    data: { policies: 2, train: 8, test: 3 },
    sft: { epochs: { 'direct-sft': 1, 'cot-sft': 1, 'vm-cpt': 1 }, batchSize: 4, lr: 1e-3, warmupFraction: 0, microBatchPositions: 4096, lora: { rank: 2, alpha: 4, lr: 2e-3 } },
    rl: { steps: 1, prompts: 2, G: 2, miniBatches: 1, lr: 1e-4, maxNewTokens: 6, temperature: 1 },
    evalLimit: 4, evalMaxNewTokens: 6,
  },
  // npm start: minutes on lavapipe
  demo: {
    data: { policies: 10, train: 64, test: 10 },
    // CoT SFT sees 80 records here: 12 epochs (60 steps) for the CoT template to be learned at all
    sft: { epochs: { 'direct-sft': 2, 'cot-sft': 12, 'vm-cpt': 1 }, batchSize: 16, lr: 5e-4, warmupFraction: 0.05, microBatchPositions: 4096, lora: { rank: 8, alpha: 16, lr: 5e-3 } },
    rl: { steps: 6, prompts: 8, G: 4, miniBatches: 2, lr: 1e-4, maxNewTokens: 80, temperature: 1 },
    evalLimit: 0, evalMaxNewTokens: 80,
  },
  // results/: an hour or more per setting on lavapipe
  small: {
    data: { policies: 10, train: 400, test: 40 },
    sft: { epochs: { 'direct-sft': 2, 'cot-sft': 3, 'vm-cpt': 1 }, batchSize: 16, lr: 5e-4, warmupFraction: 0.05, microBatchPositions: 4096, lora: { rank: 8, alpha: 16, lr: 5e-3 } },
    rl: { steps: 20, prompts: 16, G: 5, miniBatches: 2, lr: 1e-4, maxNewTokens: 160, temperature: 1 },
    evalLimit: 0, evalMaxNewTokens: 160,
  },
  // a lent GPU: the paper's sizes
  gpu: {
    data: { policies: 10, train: 2000, test: 200 },
    sft: { epochs: { 'direct-sft': 2, 'cot-sft': 3, 'vm-cpt': 1 }, batchSize: 32, lr: 5e-4, warmupFraction: 0.05, microBatchPositions: 16384, lora: { rank: 8, alpha: 16, lr: 5e-3 } },
    rl: { steps: 100, prompts: 32, G: 5, miniBatches: 4, lr: 1e-4, maxNewTokens: 300, temperature: 1 },
    evalLimit: 0, evalMaxNewTokens: 300,
  },
};

/** What `trimpi run` runs: one setting, some methods, at one scale, from one base checkpoint. */
export interface RunConfig {
  setting: 'clevr-t' | 'clevr-m' | 'tool';
  depth: number;
  seed: number;
  /** clevr: how the target policies' trees are pruned (default 'paper'; see PolicyPruning). */
  pruning?: PolicyPruning;
  methods: MethodName[];
  scale: keyof typeof SCALES;
  /** The base model's checkpoint directory (models/base-cpu). */
  base: string;
  out: string;
  /** Overrides of the scale's values (tests, experiments). */
  overrides?: Partial<ScaleConfig>;
}

/** How a run reports: log lines, progress bars, and whether the suite and report follow the table. */
export interface RunHooks {
  log?: (line: string) => void;
  /** Progress bars on this stream (default stderr; null: none). */
  progress?: NodeJS.WriteStream | null;
  /** After the table: the evaluation suite (<setting>/evals.json), src/trimpi/suite.ts. Default true. */
  suite?: boolean;
  /** After the table (and the suite): the HTML report, out/report.html. Default true. */
  report?: boolean;
}

// ---- the run -----------------------------------------------------------------------------------------

function settingKey(c: RunConfig): string {
  return c.setting === 'tool' ? 'tool' : `${c.setting}-d${c.depth}`;
}

function scaleOf(c: RunConfig): ScaleConfig {
  return { ...SCALES[c.scale], ...(c.overrides ?? {}) };
}

/** Stages needed for the methods, parents first. */
export function stagesFor(methods: readonly MethodName[]): StageName[] {
  const out: StageName[] = [];
  const add = (s: StageName | 'base'): void => {
    if (s === 'base' || out.includes(s)) return;
    add(STAGES[s].from);
    out.push(s);
  };
  for (const m of methods) add(METHODS[m].stage);
  return out;
}

function writeJsonAtomic(path: string, value: unknown): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(value, null, 1) + '\n');
  renameSync(tmp, path);
}

/** dir if it holds a committed checkpoint (saveCheckpoint commits atomically), else null. */
function loadable(dir: string): string | null {
  try {
    readManifest(dir);
    return dir;
  } catch {
    return null;
  }
}

function truncateMetrics(path: string, step: number): void {
  if (!existsSync(path)) return;
  const keep = readFileSync(path, 'utf8').split('\n').filter((l) => l.trim() && (JSON.parse(l) as { step: number }).step <= step);
  writeFileSync(path, keep.map((l) => l + '\n').join(''));
}

/** The RL task of an MPI setting: train prompts drawn by (seed, step, batch), scored by the setting's scorer. */
export class MpiRlTask implements RlTask<RlItem & { record: MpiRecord }> {
  constructor(readonly data: MpiData, readonly tok: Tokenizer, readonly seed: number) {}
  prompts(step: number, batch: number, n: number): (RlItem & { record: MpiRecord })[] {
    const r = rng(this.seed, 'rl-prompts', step, batch);
    return Array.from({ length: n }, () => {
      const record = r.pick(this.data.train);
      const plain = this.data.prompt(record, false);
      const withP = this.data.prompt(record, true);
      return { record, noPolicy: { tokens: this.tok.encode(plain.prompt), images: plain.images }, withPolicy: { tokens: this.tok.encode(withP.prompt), images: withP.images } };
    });
  }
  images(keys: readonly string[]) {
    return this.data.imageTensor(keys);
  }
  score(item: RlItem & { record: MpiRecord }, response: readonly number[]): { accuracy: number; format: number } {
    const s = this.data.score(item.record, this.tok.decode(response));
    return { accuracy: s.score, format: s.format };
  }
}

/**
 * Runs (or resumes) the methods of `config` and writes results.json; returns the results.
 */
export async function runPipeline(config: RunConfig, tok: Tokenizer, hooks: RunHooks = {}): Promise<RunResults> {
  const op = 'trimpi run';
  const log = hooks.log ?? ((l: string) => console.log(l));
  const progressStream = hooks.progress === undefined ? process.stderr : hooks.progress;
  const bar = (label: string, unit: string) => (progressStream ? progressBar(label, progressStream, unit) : () => undefined);
  check(config.methods.length > 0, op, () => 'no methods given');
  for (const m of config.methods) check(m in METHODS, op, () => `unknown method '${m}' (expected one of ${METHOD_NAMES.join(', ')})`);
  check(existsSync(join(config.base, 'config.json')), op, () => `base model ${config.base} not found (a checkpoint directory with config.json; train one with trimpi pretrain)`);
  const started = performance.now();
  const scale = scaleOf(config);
  const root = join(config.out, settingKey(config));
  mkdirSync(root, { recursive: true });
  const runCfgPath = join(root, 'run.json');
  const pruning = config.pruning ?? 'paper';
  const runCfg = { setting: config.setting, depth: config.depth, seed: config.seed, pruning, scale: config.scale, base: config.base, overrides: config.overrides ?? null };
  if (existsSync(runCfgPath)) {
    const saved = JSON.parse(readFileSync(runCfgPath, 'utf8')) as unknown;
    check(JSON.stringify(saved) === JSON.stringify(runCfg), op, () => `${root} holds a run with another configuration (${runCfgPath}): use another --out`);
  } else writeJsonAtomic(runCfgPath, runCfg);

  const dataBar = bar(`data ${settingKey(config)}`, 'images');
  const imageSize = (readManifest(config.base).config as { imageSize?: number } | null)?.imageSize;
  check(typeof imageSize === 'number', op, () => `${config.base}/config.json has no model config with an imageSize`);
  const data = await MpiData.open(join(root, 'data'), { setting: config.setting, depth: config.depth, seed: config.seed, pruning, imageSize, ...scale.data }, (d, t) => dataBar(d, t));
  const device = currentDevice().adapter.description || currentDevice().adapter.device || 'unknown';
  log(`${settingKey(config)}: ${data.train.length} train / ${data.test.length} test records, ${data.policies.size} policies; device ${device}`);

  const stageDir = (s: StageName): string => join(root, 'stages', s);
  const modelDir = (s: StageName | 'base'): string => (s === 'base' ? config.base : join(stageDir(s), 'model'));
  // every model of the run (base, stages, RL reference) is loaded with one context
  const context = { maxPositions: contextFor(config.setting, config.base) };
  const summaries: Record<string, StageSummary> = {};
  const sequences = checkContext(config, data, tok, context, log);

  for (const s of stagesFor(config.methods)) {
    const done = join(stageDir(s), 'done.json');
    if (existsSync(done) && loadable(modelDir(s))) {
      summaries[s] = JSON.parse(readFileSync(done, 'utf8')) as StageSummary;
      log(`stage ${s}: done (${summaries[s].seconds.toFixed(0)} s), skipped`);
      continue;
    }
    summaries[s] = await runStage(s, config, scale, data, tok, sequences, modelDir, context, stageDir(s), bar, log);
    writeJsonAtomic(done, summaries[s]);
    const sm = summaries[s];
    log(`stage ${s}: ${sm.steps} steps in ${sm.seconds.toFixed(0)} s` +
      (sm.positionsPerSecond ? `, ${sm.positionsPerSecond.toFixed(0)} positions/s` : '') +
      (sm.rolloutTokensPerSecond ? `, rollouts ${sm.rolloutTokensPerSecond.toFixed(0)} tokens/s` : '') +
      (sm.finalLoss !== null ? `, final loss ${sm.finalLoss.toFixed(3)}` : '') + `, peak GPU ${(sm.peakGpuBytes / 2 ** 20).toFixed(0)} MiB`);
  }

  // evaluation: every method on the test split (cached per method)
  mkdirSync(join(root, 'eval'), { recursive: true });
  const results: RunResults = {
    setting: config.setting, depth: config.depth, seed: config.seed, scale: config.scale, device, base: config.base,
    baselines: baselines(data), methods: {}, stages: summaries, wallSeconds: 0,
  };
  for (const m of config.methods) {
    const spec = METHODS[m];
    const path = join(root, 'eval', `${m}.json`);
    let r: AccuracyResult;
    if (existsSync(path)) r = JSON.parse(readFileSync(path, 'utf8')) as AccuracyResult;
    else {
      const model = loadVisionLanguageModel(loadable(modelDir(spec.stage)) ?? modelDir(spec.stage), context);
      try {
        r = await evaluateAccuracy(model, tok, data, { withPolicy: spec.withPolicy, maxNewTokens: scale.evalMaxNewTokens, limit: scale.evalLimit || undefined });
      } finally {
        model.dispose();
      }
      writeJsonAtomic(path, r);
    }
    results.methods[m] = { label: spec.label, accuracy: r.accuracy, format: r.format, n: r.n, withPolicy: r.withPolicy, promptTokens: r.promptTokens, responseTokens: r.responseTokens, seconds: r.seconds };
    log(`eval ${m}: accuracy ${(100 * r.accuracy).toFixed(1)}% (format ${(100 * r.format).toFixed(0)}%, n ${r.n}, ${r.seconds.toFixed(0)} s)`);
  }
  results.wallSeconds = (performance.now() - started) / 1000;
  writeJsonAtomic(join(root, 'results.json'), results);
  // the evaluation suite and the HTML report (issue 10; loaded lazily: suite.ts imports this module)
  if (hooks.suite !== false || hooks.report !== false) await (await import('./suite.js')).suiteAfterRun(config.out, root, tok, log, hooks.suite !== false);
  return results;
}

/** Positions ToolPolicy needs with its policy in context (the rule book is ~1,100 tokens; prompts and images run to ~1,700). */
export const TOOL_CONTEXT = 2048;

/**
 * The context to load a setting's models with: ToolPolicy's prompts with the policy outgrow a 1,024-position
 * base, so a rotary-position base (no position table) is loaded with TOOL_CONTEXT positions; otherwise the
 * checkpoint's own (undefined).
 */
export function contextFor(setting: string, base: string): number | undefined {
  const cfg = readManifest(base).config as { positionEncoding?: string; maxPositions?: number } | null;
  return setting === 'tool' && cfg?.positionEncoding === 'rope' && (cfg.maxPositions ?? 0) < TOOL_CONTEXT ? TOOL_CONTEXT : undefined;
}

/**
 * Before the first stage: every sequence the run will train on or prompt with must fit the models'
 * context. Supervised stages leave out the sequences that do not (logged with their count; none fitting
 * throws); a prompt with the policy in context (the in-context row, PoRo's second half) that leaves no
 * room for a response throws here, naming the setting, instead of an hour into the run. Returns each
 * supervised kind's sequences, built for the check, for the stages to train on.
 */
function checkContext(
  config: RunConfig, data: MpiData, tok: Tokenizer, context: { maxPositions?: number }, log: (l: string) => void,
): Map<SupervisedKind, SupervisedSequences> {
  const model = loadVisionLanguageModel(config.base, context);
  try {
    const stages = stagesFor(config.methods);
    const max = model.config.maxPositions;
    // built once here for the check; the stages train on these (every model of the run shares the base's layout and context)
    const built = new Map<SupervisedKind, SupervisedSequences>();
    for (const kind of new Set(stages.flatMap((s) => (STAGES[s].sft ? [STAGES[s].sft] : [])))) {
      const r = supervisedSequences(kind, data, tok, model);
      if (r.dropped > 0) log(`${kind}: ${r.dropped} of ${r.dropped + r.seqs.length} training sequences exceed the ${max}-position context (longest ${r.longest}) and are left out`);
      built.set(kind, r);
    }
    const withPolicy = [
      ...(config.methods.some((m) => METHODS[m].withPolicy) ? data.test : []),
      ...(stages.some((s) => STAGES[s].rl?.poro) ? data.train : []),
    ];
    let longest = 0;
    for (const r of withPolicy) longest = Math.max(longest, sequencePositions(model, { prompt: tok.encode(data.prompt(r, true).prompt), response: [] }));
    check(longest < max, 'trimpi run',
      () => `${settingKey(config)}: a prompt with the policy in context needs ${longest} positions, but the models have ${max} (the in-context row and PoRo need room for a response): use a base with a longer context`);
    return built;
  } finally {
    model.dispose();
  }
}

/** Trains one stage from its parent's final model; resumable from stages/<s>/resume. */
async function runStage(
  s: StageName, config: RunConfig, scale: ScaleConfig, data: MpiData, tok: Tokenizer, built: ReadonlyMap<SupervisedKind, SupervisedSequences>,
  modelDir: (s: StageName | 'base') => string, context: { maxPositions?: number }, dir: string,
  bar: (label: string, unit: string) => (d: number, t: number, extra?: string) => void, log: (l: string) => void,
): Promise<StageSummary> {
  const spec = STAGES[s];
  mkdirSync(dir, { recursive: true });
  const parent = loadable(modelDir(spec.from));
  if (!parent) throw new TrimpiError('trimpi run', `stage ${s} needs the model of ${spec.from} (${modelDir(spec.from)}), which is missing`);
  const model = loadVisionLanguageModel(parent, context);
  const resumeDir = join(dir, 'resume');
  const metricsPath = join(dir, 'metrics.jsonl');
  const started = performance.now();
  resetPeak();
  const seed = config.seed;
  try {
    if (spec.sft) {
      // LoRA (rank 8 on every linear layer, as the paper) for SFT; VM-CPT is a full fine-tune (paper section 3)
      const lora = spec.sft !== 'vm-cpt' ? scale.sft.lora : null;
      const cfg: SupervisedConfig = { ...scale.sft, kind: spec.sft, epochs: scale.sft.epochs[spec.sft], seed, lr: lora ? lora.lr : scale.sft.lr };
      const sequences = built.get(spec.sft) ?? supervisedSequences(spec.sft, data, tok, model);
      const steps = supervisedSteps(cfg, sequences.seqs.length);
      const adapters: LoraHandle | null = lora ? applyLora(model, { rank: lora.rank, alpha: lora.alpha, seed }) : null;
      // built after applyLora: it trains the adapters only
      const trainer = new Trainer<{ tb: TargetBatch; keys: string[] }>(model, {
        lr: cfg.lr, minLr: cfg.lr / 10, warmupSteps: Math.round(cfg.warmupFraction * steps), totalSteps: steps, weightDecay: 0.01, maxGradNorm: 1, seed,
      });
      let trainerAlive = true;
      try {
        const resume = loadable(resumeDir);
        if (resume) {
          loadCheckpoint(resume, model, { optimizer: trainer.optimizer });
          log(`stage ${s}: resuming at step ${trainer.step} of ${steps}`);
        }
        truncateMetrics(metricsPath, trainer.step);
        const progress = bar(`stage ${s}`, 'steps');
        let lastSave = performance.now();
        let lastLoss: number | null = null;
        let positions = 0;
        const trainStart = performance.now();
        await trainSupervised(model, trainer, data, tok, cfg, {
          sequences,
          onStep: async (p) => {
            positions = p.positions;
            if (!Number.isNaN(p.loss)) {
              lastLoss = p.loss;
              appendFileSync(metricsPath, JSON.stringify({ step: p.step, loss: p.loss, lr: trainer.lrAt(p.step - 1), seconds: (performance.now() - started) / 1000 }) + '\n');
            }
            progress(p.step, p.steps, lastLoss !== null ? `loss ${lastLoss.toFixed(3)}` : undefined);
            if (p.step < p.steps && performance.now() - lastSave > 120_000) {
              await saveCheckpoint(resumeDir, model, { optimizer: trainer.optimizer });
              lastSave = performance.now();
            }
          },
        });
        // the optimizer holds the adapters: free it before merging them into the weights
        trainer.dispose();
        trainerAlive = false;
        adapters?.merge();
        await saveCheckpoint(modelDir(s), model, { extra: { stage: s, from: spec.from, lora: lora ? { rank: lora.rank, alpha: lora.alpha } : null } as JsonValue });
        rmSync(resumeDir, { recursive: true, force: true });
        const seconds = (performance.now() - started) / 1000;
        return { stage: s, from: spec.from, seconds, steps, positionsPerSecond: positions / ((performance.now() - trainStart) / 1000), rolloutTokensPerSecond: null, peakGpuBytes: memoryStats().peakBytesInUse, finalLoss: lastLoss };
      } finally {
        if (trainerAlive) trainer.dispose();
        if (adapters?.active) adapters.dispose();
      }
    }
    // RL
    const rl = spec.rl!;
    const reference = rl.algorithm.loss.kl ? loadVisionLanguageModel(parent, context) : null;
    const runner = new RlRunner(model, reference, new MpiRlTask(data, tok, seed), { ...scale.rl, algorithm: rl.algorithm, poro: rl.poro, seed }, EOS);
    try {
      const resume = loadable(resumeDir);
      let first = 0;
      if (resume) {
        const m = loadCheckpoint(resume, model, { optimizer: runner.trainer.optimizer });
        first = (m.extra as { rolloutStep: number }).rolloutStep;
        log(`stage ${s}: resuming at rollout step ${first} of ${scale.rl.steps}`);
      }
      truncateMetrics(metricsPath, first - 1);
      const progress = bar(`stage ${s}`, 'rollout steps');
      let last: RlStepMetrics | undefined;
      let tokens = 0, rolloutSeconds = 0;
      for (let step = first; step < scale.rl.steps; step++) {
        last = await runner.rolloutStep(step);
        tokens += last.rolloutTokensPerSecond * last.rolloutSeconds;
        rolloutSeconds += last.rolloutSeconds;
        // checkpoint first: a logged step is always a resumable one
        if (step + 1 < scale.rl.steps) await saveCheckpoint(resumeDir, model, { optimizer: runner.trainer.optimizer, extra: { rolloutStep: step + 1 } });
        appendFileSync(metricsPath, JSON.stringify(last) + '\n');
        progress(step + 1, scale.rl.steps, `reward ${last.reward.toFixed(2)}${last.rewardWithPolicy !== null ? ` / with policy ${last.rewardWithPolicy.toFixed(2)}` : ''}`);
      }
      await saveCheckpoint(modelDir(s), model, { extra: { stage: s, from: spec.from } as JsonValue });
      rmSync(resumeDir, { recursive: true, force: true });
      return {
        stage: s, from: spec.from, seconds: (performance.now() - started) / 1000, steps: scale.rl.steps, positionsPerSecond: null,
        rolloutTokensPerSecond: rolloutSeconds > 0 ? tokens / rolloutSeconds : null, peakGpuBytes: memoryStats().peakBytesInUse, finalLoss: last?.loss ?? null, last,
      };
    } finally {
      runner.dispose();
      reference?.dispose();
    }
  } finally {
    model.dispose();
  }
}

/** The results as a text table beside the paper's N = 6 numbers (docs/trimpi.md). */
export function formatResults(r: RunResults): string {
  const lines = [`${r.setting}${r.setting === 'tool' ? '' : ` N=${r.depth}`} (${r.scale} scale, ${r.device}), accuracy without the policy in context unless stated:`];
  lines.push(`  ${'method'.padEnd(40)} ${'accuracy'.padStart(8)} ${'format'.padStart(7)} ${'n'.padStart(5)}`);
  for (const [, m] of Object.entries(r.methods)) {
    lines.push(`  ${m.label.padEnd(40)} ${(100 * m.accuracy).toFixed(1).padStart(7)}% ${(100 * m.format).toFixed(0).padStart(6)}% ${String(m.n).padStart(5)}`);
  }
  lines.push(`  ${'majority-case baseline'.padEnd(40)} ${(100 * r.baselines.majority).toFixed(1).padStart(7)}%`);
  if (r.setting !== 'tool') lines.push(`  ${'majority case, natural sampling'.padEnd(40)} ${(100 * (r.baselines.naturalMajority ?? 0)).toFixed(1).padStart(7)}%`);
  lines.push(`  ${'uniform-random baseline'.padEnd(40)} ${(100 * r.baselines.random).toFixed(1).padStart(7)}%`);
  lines.push(`  wall time ${r.wallSeconds.toFixed(0)} s`);
  return lines.join('\n');
}
