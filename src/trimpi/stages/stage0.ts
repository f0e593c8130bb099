// Stage 0: the base model, trained from scratch to see scenes and to follow a policy it reads. It
// stands in for the paper's pretrained Qwen2.5-VL (docs/trimpi.md section 2). The MPI target
// policies are never used here: policies come from randomPolicies(), which excludes every target
// name and tree of the same seed.
//
// The recipe, one seeded stream of three tasks (a curriculum moves weight from perception to policies):
//   describe  "<image> What objects are there?" → "There is a large green rubber cylinder. There is …"
//             (every object, left to right): a dense perception signal, every token an attribute
//   sceneqa   counting, existence (of conjunctions too: the "focus" of a policy) and attribute queries
//   policy    a random policy (-T / -M, depth 2 / 4) in context, a scene drawn for a uniformly chosen
//             case, the gold CoT: learning to read a policy and to apply it
// Loss: token-mean cross-entropy on the response only, plus (patchLoss > 0) the dense perception loss
// of losses/patch_attributes.ts on every image of the step: each patch an object covers names the
// object's size, colour, material and shape against the word embeddings. Resumable: the stream of
// step s depends only on (seed, s), and a checkpoint holds the model, the optimizer and the step.
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer, defaultTokenizer } from '../data/tokenizer.js';
import { PolicyMode, PolicyPruning } from '../data/clevr_policy.js';
import { Rng, rng } from '../data/rng.js';
import { Trainer } from '../../nn/train.js';
import { VisionLanguageModel, VlmConfig } from '../../nn/vlm.js';
import { preset } from '../../nn/presets.js';
import { loadCheckpoint, saveCheckpoint, JsonValue } from '../../nn/checkpoint.js';
import { LossAgg, aggregateLoss, microBatchScales } from '../losses/aggregate.js';
import { add, assign, concat, mul, neg, reshape, zeros } from '../../tensor/ops.js';
import { noGrad } from '../../tensor/autograd.js';
import { ATTRIBUTE_TYPES, ATTRIBUTE_VALUES, AttributeType, Scene, SceneOptions, resolveSceneOptions } from '../data/scene.js';
import { patchAttributeLoss, patchAttributeTargets } from '../losses/patch_attributes.js';
import type { Tensor } from '../../tensor/tensor.js';
import { TrimpiError, check } from '../../gpu/errors.js';
import { currentDevice } from '../../gpu/device.js';
import { TargetBatch, TargetKind, microBatches, sequencePositions, targetLogProbs, toTargetInputs } from './batch.js';
import { LOOKUP_FORMS, LookupAsk, LookupForm, PolicyPool, SCENE_TEXTS, SceneText, TextExample, checksExample, lookupExample, cropExample, describeExample, policyExample, policyTextSceneExample, sceneQaExample, sceneQaTextExample, toolPolicyExample } from './examples.js';
import { EvalSummary, encodeExample, evaluateExamples, renderExampleScenes } from './generation.js';

/** Task weights: single-object crops, scene descriptions, SceneQA, policies in context (with the scene as an image, or as text). */
export interface Stage0Mix {
  crop: number;
  describe: number;
  sceneqa: number;
  policy: number;
  /** -T policies in context with the scene as text (policyTextSceneExample): policy reading without perception. Absent: 0. */
  policyText?: number;
  /** The CoT's observation step drilled (checksExample) on a scene given as text: the lookup of a checked value among listed objects. Absent: 0. */
  checksText?: number;
  /** The same on an image: the CoT's observation, in its own words, from the pixels. Absent: 0. */
  checksImage?: number;
  /** SceneQA on a scene given as text (sceneQaTextExample): the lookup of a filter among listed objects, answered at once. Absent: 0. */
  sceneqaText?: number;
  /** A random ToolPolicy rule book in context with a tool-call sample (toolPolicyExample; ~1,100-1,600 positions: the model needs maxPositions ≥ 2,048). Absent: 0. */
  tool?: number;
  /** The existence lookup drilled on text scenes (lookupExample, asked values from `lookup`'s curriculum). Absent: 0. */
  lookupText?: number;
  /** The same on images. Absent: 0. */
  lookupImage?: number;
  /** The same on images, the asked value shown by a crop image as the -M policies show it ("the same color as <image>"). Absent: 0. */
  lookupCrop?: number;
}

/**
 * The lookup drill's curriculum: which value lookupExample asks at each step. A balanced yes / no about
 * a freely drawn value has no first-order gradient; a phase asking one value first builds its detector
 * (docs/stage0.md, "Run 8").
 */
export interface LookupCurriculum {
  /**
   * From step 0 in order, each phase asks its value ('*': any value of its type, or any type) for `steps`
   * steps, over scenes of its own object counts where it sets them (a count curriculum: one object first,
   * docs/stage0.md "Run 16"); after them, any value over the curriculum's counts.
   */
  phases: LookupPhase[];
  /** The share of a phase's drill examples that re-ask an earlier phase (so its detectors are kept). Default 0. */
  replay?: number;
  /** Objects per scene (default 3-6, as the policies' scenes). */
  minObjects?: number;
  maxObjects?: number;
  /**
   * 'answer' (default): "Is there a metal object?" → \boxed{yes|no}; 'observation': in the CoT's words
   * (lookupExample); 'bridge': the question of 'answer', the words of 'observation'; 'mixed': each drill
   * example 'answer' or 'observation' at even odds (held-out: the observation).
   */
  form?: LookupForm | 'mixed';
}

/** One phase of a lookup curriculum (LookupCurriculum.phases). */
export interface LookupPhase {
  type: AttributeType | '*';
  value: string;
  steps: number;
  /** Objects per scene in this phase (default: the curriculum's). */
  minObjects?: number;
  maxObjects?: number;
}

/** Everything that defines a stage-0 run (saved beside the checkpoint). */
export interface Stage0Config {
  preset: 'tiny' | 'cpu' | 'gpu';
  seed: number;
  /** Optimizer steps (the cosine schedule's length). */
  steps: number;
  /** Sequences per step. */
  batchSize: number;
  lr: number;
  minLr: number;
  warmupSteps: number;
  /** Task weights at the start and at the end of training (linear in between). */
  mixStart: Stage0Mix;
  mixEnd: Stage0Mix;
  /** Kinds of policy (mode and depth) for the policy task, each with its weight at the start and end. */
  policyKinds: { mode: PolicyMode; depth: number; start: number; end: number }[];
  /** Padded positions per micro-batch at most (examples are sorted by length and grouped). */
  microBatchPositions: number;
  /** Random policies in the training pool per (mode, depth). */
  poolSize: number;
  /** Held-out evaluation items per group at the end. */
  evalItems: number;
  /** Model overrides (e.g. { maxPositions: 1024 }). */
  model?: Partial<Omit<VlmConfig, 'vocabSize'>>;
  /** Steps at mixStart before the mix moves linearly to mixEnd (a perception phase; default 0). */
  perceptionSteps?: number;
  /** Weight of the patch-attribute loss added to the response loss (default 0: off). */
  patchLoss?: number;
  /** How the random policies' trees are pruned (absent: 'strict', the rule of the runs before the option). */
  pruning?: PolicyPruning;
  /**
   * Start from this checkpoint's weights (a base model directory) instead of the preset's random
   * init, e.g. to continue a base with a new mix; the optimizer and the schedule start afresh. Used
   * only when `dir` has no checkpoint of its own (a resumed run continues from that).
   */
  init?: string;
  /**
   * Which tokens the loss covers: 'response' (the gold answer only; the runs so far) or 'text' (every
   * text token of prompt and response, as VM-CPT: the policy's own repeated phrases and the scene
   * descriptions then teach copying from the context, which response tokens alone did not). Absent: 'response'.
   */
  targets?: TargetKind;
  /** The asked values of the lookup drill (mix weights lookupText / lookupImage / lookupCrop) by step; absent: any value throughout. */
  lookup?: LookupCurriculum;
  /**
   * How the step's response tokens are weighed (absent: 'micro-batch', the runs before the option):
   *   'micro-batch'  the token mean of each length-sorted micro-batch, micro-batches equal: a long
   *                  example alone in its micro-batch weighs as much as thirty short ones together
   *   'token'        every response token of the step equal
   *   'example'      every example equal (the token mean within an example): a one-word answer
   *                  (SceneQA, the lookup drill) weighs as much as a 70-token CoT
   * docs/stage0.md ("Run 9") measured each task's share of the gradient under each.
   */
  weighting?: ResponseWeighting;
  /**
   * How a scene given as text lists its objects (the text-scene tasks: policyText, checksText,
   * sceneqaText, lookupText): 'sentences' "There is a …. There is a …." or 'list' "…; …." (SceneText).
   * Absent: 'sentences', the runs before the option.
   */
  sceneText?: SceneText;
}

/** Stage0Config.weighting's values. */
export type ResponseWeighting = 'micro-batch' | 'token' | 'example';
/** Every ResponseWeighting (for validating recipes). */
export const RESPONSE_WEIGHTINGS: readonly ResponseWeighting[] = ['micro-batch', 'token', 'example'];

/** The recipe of models/base-cpu (`trimpi pretrain` with no options reproduces it). */
export const STAGE0_DEFAULTS: Stage0Config = {
  preset: 'cpu', seed: 0, steps: 1500, batchSize: 16, lr: 1e-3, minLr: 1e-4, warmupSteps: 100,
  // a perception phase first, weighted to single large objects (crops, descriptions and questions
  // are ~75-100 positions; a policy example 300-1,000: docs/stage0.md found shape and material
  // slow to learn, and fastest on crops), then the weight moves to policies
  perceptionSteps: 600,
  mixStart: { crop: 0.5, describe: 0.2, sceneqa: 0.3, policy: 0 },
  mixEnd: { crop: 0.05, describe: 0.1, sceneqa: 0.3, policy: 0.55 },
  // every patch an object covers names its four attributes (losses/patch_attributes.ts)
  patchLoss: 1,
  // -M at depth 4 (~1,450 positions with its crops) is left out at the cpu scale: one costs ~15 scene questions
  policyKinds: [{ mode: 'T', depth: 2, start: 1, end: 1 }, { mode: 'M', depth: 2, start: 1, end: 1 }, { mode: 'T', depth: 4, start: 0, end: 0.6 }],
  microBatchPositions: 4096,
  poolSize: 3000, evalItems: 50,
  // random policies under the paper's tree rule, as the MPI targets (never one of them)
  pruning: 'paper',
};

/** The optional Stage0Config fields (a recipe file may set them; the defaults may leave them out). */
export const STAGE0_OPTIONAL_KEYS = ['model', 'perceptionSteps', 'patchLoss', 'pruning', 'init', 'targets', 'lookup', 'weighting', 'sceneText'] as const satisfies readonly (keyof Stage0Config)[];

const lerp = (a: number, b: number, t: number): number => a + (b - a) * t;
/** The mix's tasks in draw order (a new task goes last, so older configs draw the same stream). */
export const MIX_TASKS = ['crop', 'describe', 'sceneqa', 'policy', 'policyText', 'checksText', 'checksImage', 'sceneqaText', 'tool', 'lookupText', 'lookupImage', 'lookupCrop'] as const;
/** The lookup drill's mix tasks and the scene each one asks about. */
export const LOOKUP_TASKS = { lookupText: 'text', lookupImage: 'image', lookupCrop: 'crop' } as const;
const isLookupTask = (k: string): k is keyof typeof LOOKUP_TASKS => k in LOOKUP_TASKS;
const mixes = (c: Stage0Config, k: keyof Stage0Mix): boolean => (c.mixStart[k] ?? 0) > 0 || (c.mixEnd[k] ?? 0) > 0;

/** The examples of step `step` (a pure function of the config and the step). */
export function stage0Examples(c: Stage0Config, pool: PolicyPool, step: number): TextExample[] {
  const hold = c.perceptionSteps ?? 0;
  const t = Math.min(1, Math.max(0, step - hold) / Math.max(1, c.steps - hold - 1));
  const mix = MIX_TASKS.map((k) => lerp(c.mixStart[k] ?? 0, c.mixEnd[k] ?? 0, t));
  const kindW = c.policyKinds.map((k) => lerp(k.start, k.end, t));
  // text scenes replace the image of -T policies only (a -M policy's crops are images)
  const textW = c.policyKinds.map((k, i) => (k.mode === 'T' ? kindW[i] : 0));
  const style = c.sceneText; // absent: the examples' default, 'sentences'
  return Array.from({ length: c.batchSize }, (_, k) => {
    const r = rng(c.seed, 'stage0', step, k);
    const task = r.weighted(mix); // trailing weights of 0 leave the draws of shorter mixes unchanged
    if (task === 0) return cropExample(r);
    if (task === 1) return describeExample(r);
    if (task === 2) return sceneQaExample(r);
    if (task === 5) return checksExample(r, 'text', {}, style);
    if (task === 6) return checksExample(r, 'image');
    if (task === 7) return sceneQaTextExample(r, undefined, style);
    if (task === 8) return toolPolicyExample(r, pool.tool(r.int(0, pool.size - 1)));
    const name = MIX_TASKS[task];
    if (isLookupTask(name)) {
      const p = lookupPhase(c.lookup, step, r);
      const form = c.lookup?.form === 'mixed' ? (r.bool() ? 'answer' : 'observation') : c.lookup?.form;
      return lookupExample(r, LOOKUP_TASKS[name], phaseAsk(p), lookupScenes(c.lookup, p), form, style);
    }
    if (task === 4) {
      const { mode, depth } = c.policyKinds[r.weighted(textW)];
      return policyTextSceneExample(r, r.pick(pool.get(mode, depth)), style);
    }
    const { mode, depth } = c.policyKinds[r.weighted(kindW)];
    return policyExample(r, r.pick(pool.get(mode, depth)), c.seed);
  });
}

/** The lookup drill's phase at `step` (or, at the replay rate, an earlier phase); null after the phases. */
export function lookupPhase(cur: LookupCurriculum | undefined, step: number, r: Rng): LookupPhase | null {
  const phases = cur?.phases ?? [];
  let k = 0;
  for (let end = 0; k < phases.length && step >= (end += phases[k].steps); k++);
  if (k >= phases.length) return null;
  return k > 0 && r.bool(cur?.replay ?? 0) ? phases[r.int(0, k - 1)] : phases[k];
}

/** The value the lookup drill asks at `step`: its curriculum phase's (or, at the replay rate, an earlier phase's), then any. */
export function lookupAsk(cur: LookupCurriculum | undefined, step: number, r: Rng): LookupAsk {
  return phaseAsk(lookupPhase(cur, step, r));
}

/** What a phase asks (any value after the phases). */
const phaseAsk = (p: LookupPhase | null): LookupAsk => (p ? { type: p.type, value: p.value } : { type: '*', value: '*' });

/** Throws a TrimpiError naming the bad phase of a lookup curriculum (a recipe's typo would otherwise fail mid-run). */
export function checkLookupCurriculum(cur: LookupCurriculum, op: string): void {
  check(Array.isArray(cur.phases), op, () => `lookup.phases must be a list of { type, value, steps }, got ${JSON.stringify(cur.phases)}`);
  const forms: readonly string[] = [...LOOKUP_FORMS, 'mixed'];
  check(cur.form === undefined || forms.includes(cur.form), op, () => `lookup.form must be ${forms.map((f) => `'${f}'`).join(', ')}, got ${JSON.stringify(cur.form)}`);
  const types: readonly string[] = ATTRIBUTE_TYPES;
  // the scene generator's own rule for object counts, its message prefixed with the field at fault
  const checkCounts = (o: SceneOptions, field: string): void => {
    try {
      resolveSceneOptions(o);
    } catch (e) {
      throw new TrimpiError(op, `${field}: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
  cur.phases.forEach((p, i) => {
    check(p.type === '*' ? p.value === '*' : types.includes(p.type) && (p.value === '*' || ATTRIBUTE_VALUES[p.type].includes(p.value)), op,
      () => `lookup.phases[${i}] asks ${JSON.stringify(p.type)}: ${JSON.stringify(p.value)}; expected a type of ${ATTRIBUTE_TYPES.join(', ')} with one of its values or '*', or '*': '*'`);
    check(Number.isInteger(p.steps) && p.steps > 0, op, () => `lookup.phases[${i}].steps must be a positive integer, got ${JSON.stringify(p.steps)}`);
    checkCounts(lookupScenes(cur, p), `lookup.phases[${i}]`);
  });
  const replay = cur.replay ?? 0;
  check(replay >= 0 && replay <= 1, op, () => `lookup.replay must be in [0, 1], got ${replay}`);
  checkCounts(lookupScenes(cur), 'lookup');
}

/** The drill's object counts: the phase's where it sets them, else the curriculum's (default 3-6). */
const lookupScenes = (cur: LookupCurriculum | undefined, p: LookupPhase | null = null): SceneOptions =>
  ({ minObjects: p?.minObjects ?? cur?.minObjects, maxObjects: p?.maxObjects ?? cur?.maxObjects });

/** Whether an example (prompt, response, <eos>) fits the decoder's context once its images are expanded. */
export function fitsContext(model: VisionLanguageModel, tok: Tokenizer, e: TextExample): boolean {
  return sequencePositions(model, encodeExample(tok, e)) <= model.config.maxPositions;
}

/** Held-out examples: fresh scenes from another stream, policies from a window after the training pool. */
export function stage0EvalExamples(c: Stage0Config, n: number): TextExample[] {
  const heldOut = new PolicyPool(c.seed, n, c.poolSize, c.pruning ?? 'strict');
  const out: TextExample[] = [];
  const r = rng(c.seed, 'stage0-eval');
  const style = c.sceneText;
  for (const kind of ['count', 'exist', 'query'] as const) for (let i = 0; i < n; i++) out.push(sceneQaExample(r, kind));
  for (let i = 0; i < n; i++) out.push(describeExample(r));
  for (let i = 0; i < n; i++) out.push(cropExample(r));
  for (const { mode, depth } of c.policyKinds) {
    const pols = heldOut.get(mode, depth);
    for (let i = 0; i < n; i++) out.push(policyExample(r, pols[i], c.seed + 1));
  }
  // the checks drill, where the recipe trains it
  for (const sceneAs of ['text', 'image'] as const) {
    if (mixes(c, sceneAs === 'text' ? 'checksText' : 'checksImage')) for (let i = 0; i < n; i++) out.push(checksExample(r, sceneAs, {}, style));
  }
  // policy reading alone, where the recipe trains it
  if (mixes(c, 'policyText')) {
    for (const { mode, depth } of c.policyKinds.filter((k) => k.mode === 'T')) {
      const pols = heldOut.get(mode, depth);
      for (let i = 0; i < n; i++) out.push(policyTextSceneExample(r, pols[i], style));
    }
  }
  // SceneQA on text scenes, where the recipe trains it (last: the groups above draw as before)
  if (mixes(c, 'sceneqaText')) for (const kind of ['count', 'exist', 'query'] as const) for (let i = 0; i < n; i++) out.push(sceneQaTextExample(r, kind, style));
  // random rule books in context, where the recipe trains them
  if (mixes(c, 'tool')) for (let i = 0; i < n; i++) out.push(toolPolicyExample(r, heldOut.tool(i)));
  // the lookup drill, any value, where the recipe trains it
  for (const [k, sceneAs] of Object.entries(LOOKUP_TASKS)) {
    if (mixes(c, k as keyof typeof LOOKUP_TASKS)) for (let i = 0; i < n; i++) out.push(lookupExample(r, sceneAs, undefined, lookupScenes(c.lookup), c.lookup?.form === 'mixed' ? 'observation' : c.lookup?.form, style));
  }
  return out;
}

/** A logged stage-0 step. */
export interface Stage0Progress {
  step: number;
  steps: number;
  loss: number;
  lr: number;
  positionsPerSecond: number;
  elapsedSeconds: number;
}

/** How a stage-0 run stops, saves, logs and reports. */
export interface Stage0RunOptions {
  /** Stop (after saving) once this much wall time has passed in this process; resume later. */
  maxSeconds?: number;
  /** Save every this many seconds (default 300) and at the end. */
  saveEverySeconds?: number;
  /** Read the loss back every this many steps for the log (default 10). */
  logEvery?: number;
  onProgress?: (p: Stage0Progress) => void;
  /** Skip the final evaluation. */
  noEval?: boolean;
}

const CKPT = 'checkpoint';

/**
 * One micro-batch of a step: the packed targets, its images in order, their scenes, and the factor on
 * its response loss that makes the Trainer's mean over micro-batches the step's `weighting`.
 */
interface Stage0MicroBatch {
  tb: TargetBatch;
  images: Tensor | null;
  scenes: Scene[];
  scale: number;
}

/**
 * The response loss's aggregation inside each micro-batch, and each micro-batch's factor, so that the
 * mean over the n micro-batches (Trainer.trainStep) weighs the step's tokens as `weighting` says:
 * 'token': token mean × n·(its tokens / the step's); 'example': per-example token mean, averaged,
 * × n·(its examples / the step's) (microBatchScales); 'micro-batch': token mean × 1.
 */
export function microBatchWeights(weighting: ResponseWeighting, counts: readonly (readonly number[])[]): { agg: LossAgg; scales: number[] } {
  const agg = WEIGHTING_AGG[weighting];
  return { agg, scales: weighting === 'micro-batch' ? counts.map(() => 1) : microBatchScales(agg, counts) };
}

/** The aggregation of the response loss inside a micro-batch under each weighting. */
const WEIGHTING_AGG: Record<ResponseWeighting, LossAgg> = { 'micro-batch': 'token-mean', token: 'token-mean', example: 'seq-mean-token-mean' };

/** The loadable checkpoint in dir (saveCheckpoint commits atomically), or null before the first save. */
function latestCheckpoint(dir: string): string | null {
  const p = join(dir, CKPT);
  return existsSync(join(p, 'config.json')) ? p : null;
}

/** A finished (or stopped) stage-0 run: the model (the caller disposes it), the step, the evaluation when done. */
export interface Stage0Result {
  model: VisionLanguageModel;
  tokenizer: Tokenizer;
  step: number;
  done: boolean;
  eval: Record<string, EvalSummary> | null;
}

/**
 * Trains (or resumes) a stage-0 base model in `dir`: dir/checkpoint (model + optimizer + step),
 * dir/metrics.jsonl (one line per logged step), dir/stage0.json (the config). When the steps are
 * done, evaluates on held-out data and writes dir/eval.json. The returned model is the caller's.
 */
export async function trainStage0(dir: string, config: Stage0Config, opts: Stage0RunOptions = {}): Promise<Stage0Result> {
  const op = 'trainStage0';
  check(Number.isInteger(config.steps) && config.steps > 0 && Number.isInteger(config.batchSize) && config.batchSize > 0, op,
    () => `steps and batchSize must be positive integers, got ${config.steps}, ${config.batchSize}`);
  if (config.lookup) checkLookupCurriculum(config.lookup, op);
  const weighting = config.weighting ?? 'micro-batch';
  check(RESPONSE_WEIGHTINGS.includes(weighting), op, () => `weighting must be one of ${RESPONSE_WEIGHTINGS.join(', ')}, got ${JSON.stringify(config.weighting)}`);
  check(config.sceneText === undefined || SCENE_TEXTS.includes(config.sceneText), op, () => `sceneText must be one of ${SCENE_TEXTS.join(', ')}, got ${JSON.stringify(config.sceneText)}`);
  mkdirSync(dir, { recursive: true });
  const cfgPath = join(dir, 'stage0.json');
  if (existsSync(cfgPath)) {
    const saved = JSON.parse(readFileSync(cfgPath, 'utf8')) as Stage0Config;
    check(JSON.stringify(saved) === JSON.stringify(config), op, () => `${dir} holds a run with another config (${cfgPath}); use a new directory`);
  } else writeFileSync(cfgPath, JSON.stringify(config, null, 1) + '\n');
  const tok = defaultTokenizer();
  const p = preset(config.preset, tok.size, { seed: config.seed, ...(config.model ?? {}) });
  const model = new VisionLanguageModel(p.model);
  const trainer = new Trainer<Stage0MicroBatch>(model, {
    lr: config.lr, minLr: config.minLr, warmupSteps: config.warmupSteps, totalSteps: config.steps,
    weightDecay: p.train.weightDecay, betas: p.train.betas, maxGradNorm: p.train.maxGradNorm, seed: config.seed,
  });
  // the patch-attribute loss's running sums between log lines: [loss, accuracy of size, color, material, shape]
  const patchStats = zeros([5]);
  try {
    const ck = latestCheckpoint(dir);
    if (ck) loadCheckpoint(ck, model, { optimizer: trainer.optimizer });
    else if (config.init) loadCheckpoint(config.init, model);
    const metricsPath = join(dir, 'metrics.jsonl');
    // drop log lines past the checkpoint (they will be written again)
    if (existsSync(metricsPath)) {
      const keep = readFileSync(metricsPath, 'utf8').split('\n').filter((l) => l.trim() && (JSON.parse(l) as { step: number }).step < trainer.step);
      writeFileSync(metricsPath, keep.map((l) => l + '\n').join(''));
    }
    const pool = new PolicyPool(config.seed, config.poolSize, 0, config.pruning ?? 'strict');
    // wall time adds up across resumed processes (the log's last line holds it)
    const logged = existsSync(metricsPath) ? readFileSync(metricsPath, 'utf8').split('\n').filter((l) => l.trim()) : [];
    const offset = logged.length ? (JSON.parse(logged[logged.length - 1]) as { seconds: number }).seconds : 0;
    const started = performance.now() - offset * 1000;
    let lastSave = started;
    let positions = 0;
    let windowStart = started;
    const logEvery = opts.logEvery ?? 10;
    const patchWeight = config.patchLoss ?? 0;
    const wordIds = ATTRIBUTE_TYPES.map((a) => ATTRIBUTE_VALUES[a].map((v) => tok.encode(v)[0]));
    let patchTerms = 0;
    const agg = WEIGHTING_AGG[weighting];
    // called inside trainStep's tidy(): the intermediates live until the backward is done
    const lossOf = (mb: Stage0MicroBatch): Tensor => {
      const ti = toTargetInputs(model, mb.tb, mb.images);
      const patches = patchWeight > 0 && mb.images ? patchAttributeTargets(mb.scenes, model.cellSize) : null;
      const responseLoss = (): Tensor => mul(aggregateLoss(neg(targetLogProbs(model, ti)), ti.mask, agg), mb.scale);
      if (!patches || patches.rows.length === 0) return responseLoss();
      // the vision tower runs once: its tokens feed both the decoder and the patch loss
      ti.inputs.imageTokens = model.imageTokens(mb.images!);
      const response = responseLoss();
      const p = patchAttributeLoss(ti.inputs.imageTokens, model.decoder.tokenEmbedding.weight, wordIds, patches);
      noGrad(() => assign(patchStats, add(patchStats, concat([reshape(p.loss, [1]), p.metrics.accuracy]))));
      patchTerms++;
      return add(response, mul(p.loss, patchWeight));
    };
    while (trainer.step < config.steps) {
      const step = trainer.step;
      // a rare depth-4 example with a long CoT can exceed the decoder's context: it is left out of its step
      const examples = stage0Examples(config, pool, step).filter((e) => fitsContext(model, tok, e));
      const micro: Stage0MicroBatch[] = [];
      const groups = microBatches(model, examples.map((e) => encodeExample(tok, e)), examples, config.targets ?? 'response', config.microBatchPositions);
      const { scales } = microBatchWeights(weighting, groups.map((mb) => mb.tb.counts));
      for (const [i, mb] of groups.entries()) {
        micro.push({ tb: mb.tb, images: await renderExampleScenes(mb.extras), scenes: mb.extras.flatMap((e) => e.scenes), scale: scales[i] });
        positions += mb.tb.batch.B * mb.tb.batch.T;
      }
      const res = trainer.trainStep(micro, lossOf);
      for (const mb of micro) mb.images?.dispose();
      res.gradNorm.dispose();
      res.skipped.dispose();
      if (step % logEvery === logEvery - 1 || step === config.steps - 1) {
        const loss = await res.loss.item();
        await trainer.checkNonFinite();
        const now = performance.now();
        const rec: Record<string, number> = { step, loss, lr: res.lr, positionsPerSecond: positions / ((now - windowStart) / 1000), seconds: (now - started) / 1000 };
        if (patchTerms > 0) {
          const [pl, ...acc] = await patchStats.toArray();
          rec.patchLoss = pl / patchTerms;
          ATTRIBUTE_TYPES.forEach((a, j) => (rec[`patchAccuracy.${a}`] = acc[j] / patchTerms));
          assign(patchStats, 0);
          patchTerms = 0;
        }
        appendFileSync(metricsPath, JSON.stringify(rec) + '\n');
        opts.onProgress?.({ step: step + 1, steps: config.steps, loss, lr: res.lr, positionsPerSecond: rec.positionsPerSecond, elapsedSeconds: rec.seconds });
        positions = 0;
        windowStart = now;
      }
      res.loss.dispose();
      const now = performance.now();
      const timeUp = opts.maxSeconds !== undefined && (now - started) / 1000 >= opts.maxSeconds;
      if (trainer.step === config.steps || timeUp || now - lastSave >= (opts.saveEverySeconds ?? 300) * 1000) {
        await saveCheckpoint(join(dir, CKPT), model, { optimizer: trainer.optimizer, extra: { stage: 'stage0', device: currentDevice().adapter.description || currentDevice().adapter.device } });
        lastSave = performance.now();
      }
      if (timeUp) break;
    }
    const done = trainer.step >= config.steps;
    if (done) {
      // the shipped base: weights and config at the top of dir (no optimizer), the tokenizer beside
      await saveCheckpoint(dir, model, { step: trainer.step, extra: { stage: 'stage0', steps: trainer.step } });
      tok.save(join(dir, 'vocab.json'));
    }
    let evalResult: Record<string, EvalSummary> | null = null;
    if (done && !opts.noEval) {
      evalResult = await evaluateStage0(model, tok, config);
      writeFileSync(join(dir, 'eval.json'), JSON.stringify(stripItems(evalResult), null, 1) + '\n');
    }
    return { model, tokenizer: tok, step: trainer.step, done, eval: evalResult };
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    trainer.dispose();
    patchStats.dispose();
  }
}

/** Held-out accuracy of a base model: SceneQA, description, and in-context policies per mode and depth. */
export async function evaluateStage0(model: VisionLanguageModel, tok: Tokenizer, config: Stage0Config, n = config.evalItems): Promise<Record<string, EvalSummary>> {
  const all = stage0EvalExamples(config, n);
  const out: Record<string, EvalSummary> = {};
  for (const task of ['sceneqa', 'sceneqa-text', 'lookup', 'crop', 'describe', 'checks', 'policy', 'policy-text', 'tool'] as const) {
    const ex = all.filter((e) => e.task === task);
    if (ex.length === 0) continue;
    const policy = task === 'policy' || task === 'policy-text';
    out[task] = await evaluateExamples(model, tok, ex, { maxNewTokens: policy || task === 'checks' || task === 'tool' ? 160 : 64, batchSize: 32 });
    // policies: the chance of naming the right case by guessing (cases are drawn uniformly)
    if (policy) {
      out[task].chance = {};
      for (const g of Object.keys(out[task].groups)) {
        const inGroup = ex.filter((e) => e.group === g);
        out[task].chance[g] = inGroup.reduce((s, e) => s + 1 / (e.cases ?? 1), 0) / inGroup.length;
      }
    }
  }
  return out;
}

/** The summary without per-item outputs (keeps the first 5 per task as examples). */
export function stripItems(r: Record<string, EvalSummary>): JsonValue {
  return Object.fromEntries(Object.entries(r).map(([k, v]) => [k, { accuracy: v.accuracy, n: v.n, groups: v.groups, chance: v.chance ?? null, examples: v.items.slice(0, 5) }])) as unknown as JsonValue;
}
