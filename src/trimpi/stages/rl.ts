// RL with GRPO or DAPO, optionally with PolicyRollout (PoRo): one rollout step, from sampling to the
// update, reads top to bottom in `rolloutStep` (docs/trimpi.md section 1; verl's ray_trainer loop).
//
// One rollout step:
//   1. prompts      a batch of P prompts (Q, I), drawn from the task by (seed, step)
//   2. rollouts     G responses each from π_old(· | Q, I) at temperature 1 (batched, KV cache);
//                   PoRo: G more from π_old(· | Q, I, P), the policy in context
//   3. rewards      R = 0.9·accuracy + 0.1·format (the task's scorer)
//   4. filtering    DAPO: drop groups whose rewards are all equal, sample again (≤ maxRetries)
//   5. advantages   Â_i = (R_i − mean) / (std + ε) over each group (PoRo: the pooled 2G)
//   6. old / ref    log π_old(o | Q, I) and log π_ref(o | Q, I) of every response, recomputed under
//                   the NO-policy prompt (for PoRo's policy-in-context responses too)
//   7. updates      the rows split into mini-batches, one AdamW step each on the clipped objective
//                   (losses/policy.ts), −β·k3 KL to the reference for GRPO
// Nothing is read back inside an update: the metrics stay GPU scalars until the step is over.
import { noGrad } from '../../tensor/autograd.js';
import { check } from '../../gpu/errors.js';
import { tidy } from '../../tensor/memory.js';
import { mul, tensor } from '../../tensor/ops.js';
import type { Tensor } from '../../tensor/tensor.js';
import { generate } from '../../nn/generate.js';
import { Trainer } from '../../nn/train.js';
import type { VisionLanguageModel } from '../../nn/vlm.js';
import { RlAlgorithm } from '../losses/configs.js';
import { dynamicSampling } from '../losses/dynamic_sampling.js';
import { PoRoGroup, SampledResponse, buildPolicyRolloutBatch } from '../losses/policy_rollout.js';
import { policyLoss } from '../losses/policy.js';
import { SequenceExample, TargetBatch, targetBatch, targetLogProbs, targetLogProbsAndEntropy, toTargetInputs } from './batch.js';
import { maskedMean, microBatchScales } from '../losses/aggregate.js';

/** A prompt as the model sees it: token ids (one `<image>` per image) and its images. */
export interface RlPrompt {
  tokens: readonly number[];
  /** Keys of the images, in order; the task turns them into a tensor. */
  images: readonly string[];
}

/** One training prompt of an RL task. */
export interface RlItem {
  /** (Q, I): the prompt every response is trained under. */
  noPolicy: RlPrompt;
  /** (Q, I, P): the prompt of PoRo's second half. */
  withPolicy?: RlPrompt;
}

/** What the RL loop needs from a task: prompts, their images, and a scorer. */
export interface RlTask<I extends RlItem = RlItem> {
  /** `n` prompts for rollout step `step`, refill batch `batch` (0 first); deterministic. */
  prompts(step: number, batch: number, n: number): I[];
  /** (N, C, H, W) of the image keys, in order, or null for none. */
  images(keys: readonly string[]): Tensor | null;
  /** Accuracy in [0, 1] and format (0/1) of a response (token ids, `<eos>` included when emitted). */
  score(item: I, response: readonly number[]): { accuracy: number; format: number };
}

/** One RL stage: the algorithm (GRPO/DAPO), PoRo or not, rollout batch, G, updates per rollout step, lr, lengths, seed. */
export interface RlConfig {
  algorithm: RlAlgorithm;
  /** PolicyRollout: G more responses per prompt with the policy in context, pooled into one group. */
  poro: boolean;
  /** Rollout steps. */
  steps: number;
  /** Prompts per rollout step (the rollout batch). */
  prompts: number;
  /** Responses per prompt and half (G). */
  G: number;
  /** Optimizer steps per rollout step (the rows are split into this many mini-batches). */
  miniBatches: number;
  lr: number;
  maxNewTokens: number;
  /** Sampling temperature of the rollouts (the paper: 1). */
  temperature: number;
  seed: number;
  /** Micro-batch rows for the log-prob passes and updates (memory; default 32). */
  microRows?: number;
}

/** Host-side metrics of one rollout step. */
export interface RlStepMetrics {
  step: number;
  /** Mean reward / accuracy / format of the no-policy half and (PoRo) the policy-in-context half. */
  reward: number;
  accuracy: number;
  format: number;
  rewardWithPolicy: number | null;
  accuracyWithPolicy: number | null;
  /** Mean response length (tokens). */
  responseLength: number;
  /** Groups kept / sampled / dropped (DAPO) and refill batches used. */
  groups: number;
  sampled: number;
  dropped: number;
  retries: number;
  /** Means over the mini-batch updates. */
  loss: number;
  pgLoss: number;
  klRef: number | null;
  approxKl: number;
  clipFracLow: number;
  clipFracHigh: number;
  /** Mean entropy of π_old over the response tokens (nats). */
  entropy: number;
  gradNorm: number;
  rolloutSeconds: number;
  updateSeconds: number;
  rolloutTokensPerSecond: number;
}

interface ScoredGroup<I> {
  item: I;
  group: PoRoGroup;
  accuracy: number[];
  format: number[];
}

/** Samples G responses for each prompt (one batched generate call), temperature config.temperature. */
async function sample<I extends RlItem>(model: VisionLanguageModel, task: RlTask<I>, prompts: readonly RlPrompt[], G: number, c: RlConfig, seed: number, eosId: number): Promise<number[][]> {
  const rows = prompts.flatMap((p) => Array.from({ length: G }, () => p));
  const images = task.images(rows.flatMap((p) => p.images));
  try {
    const res = await generate(model, rows.map((p) => p.tokens), images, { maxNewTokens: c.maxNewTokens, temperature: c.temperature, eosId, seed });
    return res.tokens;
  } finally {
    images?.dispose();
  }
}

/** A training row of an update: (no-policy prompt, response), its images and its advantage. */
export interface RolloutRow {
  seq: SequenceExample;
  images: readonly string[];
  advantage: number;
}

/**
 * Step 5 of a rollout step: the responses of every (pooled) group as training rows, group by group
 * with the no-policy responses first, each under the group's NO-policy prompt (Q, I) and with its
 * advantage over the pooled group (buildPolicyRolloutBatch). An empty response becomes `<eos>`.
 */
export function rolloutRows(groups: readonly { group: PoRoGroup; images: readonly string[] }[], algorithm: RlAlgorithm, padId: number, eosId: number): RolloutRow[] {
  const rb = buildPolicyRolloutBatch(groups.map((g) => g.group), { padId, advantage: algorithm.advantage });
  return groups.flatMap((g) => [...g.group.noPolicy, ...g.group.withPolicy].map((r) => ({
    seq: { prompt: g.group.prompt, response: r.tokens.length ? r.tokens : [eosId] },
    images: g.images,
  }))).map((r, k) => ({ ...r, advantage: rb.advantages[k] }));
}

/** Step 6: log π(o | prompt) of each micro-batch's response tokens, (B, R) each, no gradient. */
export function responseLogProbs(model: VisionLanguageModel, task: RlTask, batches: readonly { tb: TargetBatch; keys: string[] }[]): Tensor[] {
  return batches.map(({ tb, keys }) => noGrad(() => tidy(() => targetLogProbs(model, toTargetInputs(model, tb, keys.length ? task.images(keys) : null)))));
}

/** responseLogProbs plus the mean entropy of π over each micro-batch's response tokens (a 1-element tensor each). */
function responseLogProbsAndEntropy(model: VisionLanguageModel, task: RlTask, batches: readonly { tb: TargetBatch; keys: string[] }[]): { logp: Tensor[]; entropy: Tensor[] } {
  const out = batches.map(({ tb, keys }) => noGrad(() => tidy(() => {
    const ti = toTargetInputs(model, tb, keys.length ? task.images(keys) : null);
    const r = targetLogProbsAndEntropy(model, ti);
    return [r.logp, maskedMean(r.entropy!, ti.mask)];
  })));
  return { logp: out.map((o) => o[0]), entropy: out.map((o) => o[1]) };
}

/**
 * Runs rollout steps of GRPO/DAPO (with PoRo when config.poro) on a task: `rolloutStep(step)` samples,
 * scores, filters, computes advantages and old/ref log-probs, then takes config.miniBatches AdamW steps.
 * The model is trained in place; `reference` (GRPO's KL) stays frozen.
 */
export class RlRunner<I extends RlItem> {
  readonly trainer: Trainer<number>;

  constructor(
    readonly model: VisionLanguageModel,
    /** The frozen reference π_ref (GRPO's KL), or null (DAPO). */
    readonly reference: VisionLanguageModel | null,
    readonly task: RlTask<I>,
    readonly config: RlConfig,
    readonly eosId: number,
  ) {
    const c = config;
    check(Number.isInteger(c.G) && c.G >= 2 || (c.poro && c.G >= 1), 'RlRunner', () => `G must be an integer >= 2 (>= 1 with PoRo), got ${c.G}`);
    check(Number.isInteger(c.prompts) && c.prompts >= 1 && Number.isInteger(c.miniBatches) && c.miniBatches >= 1, 'RlRunner',
      () => `prompts and miniBatches must be positive integers, got ${c.prompts}, ${c.miniBatches}`);
    check(!c.algorithm.loss.kl || reference !== null, 'RlRunner', () => `${c.algorithm.name} has a KL term: a reference model is needed`);
    // constant learning rate (verl's default for GRPO/DAPO), clipping at 1
    this.trainer = new Trainer<number>(model, { lr: c.lr, minLr: c.lr, warmupSteps: 0, totalSteps: Math.max(1, c.steps * c.miniBatches), maxGradNorm: 1, weightDecay: 0, seed: c.seed });
  }

  /** Steps 1–5: rollouts, rewards, filtering, the pooled groups. */
  private async rollouts(step: number): Promise<{ groups: ScoredGroup<I>[]; sampled: number; dropped: number; retries: number; tokens: number }> {
    const c = this.config;
    let tokens = 0;
    const sampleBatch = async (batch: number): Promise<ScoredGroup<I>[]> => {
      const items = this.task.prompts(step, batch, c.prompts);
      const seed = (c.seed * 1_000_003 + step * 1009 + batch) >>> 0;
      const plain = await sample(this.model, this.task, items.map((it) => it.noPolicy), c.G, c, seed, this.eosId);
      const withP = c.poro ? await sample(this.model, this.task, items.map((it) => it.withPolicy!), c.G, c, seed + 1, this.eosId) : [];
      return items.map((item, i) => {
        const responses = [...plain.slice(i * c.G, (i + 1) * c.G), ...withP.slice(i * c.G, (i + 1) * c.G)];
        tokens += responses.reduce((n, r) => n + r.length, 0);
        const scores = responses.map((r) => this.task.score(item, r));
        const w = c.algorithm.reward.formatWeight ?? 0.1;
        const sampled: SampledResponse[] = responses.map((r, j) => ({ tokens: r, reward: (1 - w) * scores[j].accuracy + w * scores[j].format }));
        return {
          item, accuracy: scores.map((s) => s.accuracy), format: scores.map((s) => s.format),
          group: { prompt: item.noPolicy.tokens, noPolicy: sampled.slice(0, c.G), withPolicy: sampled.slice(c.G) },
        };
      });
    };
    if (c.poro) check(this.task.prompts(step, 0, 1).every((it) => it.withPolicy), 'RlRunner', () => 'PoRo needs prompts with the policy in context (withPolicy)');
    const ds = c.algorithm.dynamicSampling;
    if (!ds) {
      const groups = await sampleBatch(0);
      return { groups, sampled: groups.length, dropped: 0, retries: 0, tokens };
    }
    const r = await dynamicSampling(sampleBatch, { target: c.prompts, maxRetries: ds.maxRetries, rewardsOf: (g) => [...g.group.noPolicy, ...g.group.withPolicy].map((s) => s.reward) });
    return { groups: r.groups, sampled: r.sampled, dropped: r.dropped, retries: r.batches - 1, tokens };
  }

  /** One rollout step (1–7). Returns its metrics (read back after the updates). */
  async rolloutStep(step: number): Promise<RlStepMetrics> {
    const c = this.config;
    const t0 = performance.now();
    const { groups, sampled, dropped, retries, tokens } = await this.rollouts(step);
    const t1 = performance.now();
    const halves = (pick: (g: ScoredGroup<I>, j: number) => number, withPolicy: boolean): number => {
      const xs = groups.flatMap((g) => (withPolicy ? g.group.withPolicy : g.group.noPolicy).map((_, j) => pick(g, withPolicy ? c.G + j : j)));
      return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
    };
    const reward = (g: ScoredGroup<I>, j: number): number => [...g.group.noPolicy, ...g.group.withPolicy][j].reward;
    const base = {
      step, reward: halves(reward, false), accuracy: halves((g, j) => g.accuracy[j], false), format: halves((g, j) => g.format[j], false),
      rewardWithPolicy: c.poro ? halves(reward, true) : null, accuracyWithPolicy: c.poro ? halves((g, j) => g.accuracy[j], true) : null,
      responseLength: groups.length ? groups.reduce((n, g) => n + [...g.group.noPolicy, ...g.group.withPolicy].reduce((m, r) => m + r.tokens.length, 0), 0) / groups.reduce((n, g) => n + g.group.noPolicy.length + g.group.withPolicy.length, 0) : 0,
      groups: groups.length, sampled, dropped, retries,
      rolloutSeconds: (t1 - t0) / 1000, rolloutTokensPerSecond: tokens / Math.max(1e-9, (t1 - t0) / 1000),
    };
    if (groups.length === 0) {
      return { ...base, loss: 0, pgLoss: 0, klRef: null, approxKl: 0, clipFracLow: 0, clipFracHigh: 0, entropy: 0, gradNorm: 0, updateSeconds: 0 };
    }

    // 5. advantages over each (pooled) group; every row is (Q, I, o_i): the policy is in no row
    const rows = rolloutRows(groups.map((g) => ({ group: g.group, images: g.item.noPolicy.images })), c.algorithm, this.model.config.padId, this.eosId);

    // 7. mini-batches (a fixed seeded order), each split into micro-batches for memory: rows sorted by
    //    length (less padding), each micro-batch's loss scaled so that the mini-batch is aggregated as
    //    one batch (token-mean over all its tokens, not a mean of micro-batch means)
    const order = shuffled(rows.length, c.seed, step);
    const per = Math.ceil(rows.length / c.miniBatches);
    const micro = c.microRows ?? 32;
    const length = (k: number): number => rows[k].seq.prompt.length + rows[k].seq.response.length;
    const miniBatches = Array.from({ length: c.miniBatches }, (_, m) => order.slice(m * per, (m + 1) * per)).filter((b) => b.length > 0);
    const prepared = miniBatches.map((mb) => {
      const parts = chunk([...mb].sort((a, b) => length(a) - length(b) || a - b), micro).map((idx) => ({
        tb: targetBatch(this.model, idx.map((k) => rows[k].seq)),
        keys: idx.flatMap((k) => [...rows[k].images]),
        advantages: idx.map((k) => rows[k].advantage),
      }));
      const scales = microBatchScales(c.algorithm.loss.lossAgg, parts.map((p) => p.tb.counts));
      return parts.map((p, j) => ({ ...p, scale: scales[j] }));
    });

    // 6. π_old and π_ref of every response under the no-policy prompt, before any update
    const flat = prepared.flat();
    const { logp: oldLogp, entropy } = responseLogProbsAndEntropy(this.model, this.task, flat);
    const refLogp = this.reference && c.algorithm.loss.kl ? responseLogProbs(this.reference, this.task, flat) : null;

    const sums = { loss: 0, pgLoss: 0, kl: 0, approxKl: 0, clipLow: 0, clipHigh: 0, gradNorm: 0, entropy: 0 };
    const metricTensors: { values: Tensor[]; weight: number }[] = [];
    let k = 0;
    try {
      for (const mb of prepared) {
        const first = k;
        const res = this.trainer.trainStep(mb.map((_, j) => first + j), (idx) => {
          const p = flat[idx];
          const images = this.task.images(p.keys);
          const ti = toTargetInputs(this.model, p.tb, images);
          const logp = targetLogProbs(this.model, ti);
          const { loss, metrics } = policyLoss({
            logp, oldLogp: oldLogp[idx], refLogp: refLogp?.[idx], mask: ti.mask,
            advantages: tensor(p.advantages, { shape: [p.advantages.length] }),
          }, c.algorithm.loss);
          // metrics survive trainStep's tidy (kept); read after the update, weighted like the loss
          const keepers = [metrics.pgLoss, metrics.approxKl, metrics.clipFracLow, metrics.clipFracHigh, metrics.kl ?? metrics.pgLoss].map((t) => t.keep());
          metricTensors.push({ values: keepers, weight: p.scale / mb.length });
          return mul(loss, p.scale);
        });
        k += mb.length;
        const [l, g] = await Promise.all([res.loss.item(), res.gradNorm.item()]);
        res.loss.dispose();
        res.gradNorm.dispose();
        res.skipped.dispose();
        await this.trainer.checkNonFinite();
        sums.loss += l;
        sums.gradNorm += g;
      }
      for (const { values, weight } of metricTensors) {
        const [pg, ak, lo, hi, kl] = await Promise.all(values.map((t) => t.item()));
        sums.pgLoss += weight * pg;
        sums.approxKl += weight * ak;
        sums.clipLow += weight * lo;
        sums.clipHigh += weight * hi;
        sums.kl += weight * kl;
      }
    } finally {
      let h = 0;
      for (const e of entropy) h += await e.item();
      sums.entropy = h / Math.max(1, entropy.length);
      for (const m of metricTensors) for (const t of m.values) t.dispose();
      for (const e of entropy) e.dispose();
      for (const t of oldLogp) t.dispose();
      for (const t of refLogp ?? []) t.dispose();
    }
    const nU = prepared.length;
    return {
      ...base, loss: sums.loss / nU, gradNorm: sums.gradNorm / nU, pgLoss: sums.pgLoss / nU, approxKl: sums.approxKl / nU,
      clipFracLow: sums.clipLow / nU, clipFracHigh: sums.clipHigh / nU, klRef: refLogp ? sums.kl / nU : null, entropy: sums.entropy,
      updateSeconds: (performance.now() - t1) / 1000,
    };
  }

  dispose(): void {
    this.trainer.dispose();
  }
}

function chunk<T>(xs: readonly T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

/** A seeded permutation of 0..n−1 (mulberry32 + Fisher-Yates). */
function shuffled(n: number, seed: number, step: number): number[] {
  let s = (seed * 2654435761 + step * 40503 + 1) >>> 0;
  const next = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return ((z ^ (z >>> 14)) >>> 0) / 4294967296;
  };
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}
