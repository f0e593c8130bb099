// Batched sampling with a KV cache: greedy, temperature and top-k, stopping at end-of-sequence or a
// maximum length, returning token ids and their log-probabilities under the model.
//
// Design: prompts are left-padded so every sequence's next token sits at the same cache slot (the
// padding is masked out of attention, and learned positions count from each row's first real
// token, so a padded row computes exactly what it would alone). The prompt (with its images) is
// prefilled in one forward; then one forward per new token over the cached keys and values.
//
// Sampling runs on the CPU after one readback per step of that step's last-position logits
// (B × V floats): the vocabulary is a few thousand words at most, the readback is needed anyway to
// see which sequences stopped, and on the CPU top-k is exact and the log-probs are computed in
// float64. The returned log-probs are log p(token) under the model at temperature 1 (log-softmax of
// the raw logits), what the RL losses need, whatever temperature/top-k drew the token.
import { noGrad } from '../tensor/autograd.js';
import { check } from '../gpu/errors.js';
import { tidy } from '../tensor/memory.js';
import { tensor } from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import type { VisionLanguageModel } from './vlm.js';
import { checkOptions } from '../tensor/validate.js';

/** How one token is drawn: temperature, top-k, suppressed ids. */
export interface SampleOptions {
  /** 0 = greedy (argmax, lowest id on ties); otherwise logits are divided by it before sampling. Default 1. */
  temperature?: number;
  /** Sample among the k most likely tokens only (0 or undefined: the whole vocabulary). */
  topK?: number;
  /** Ids never drawn (generate() always adds the model's `<image>` id: an image place cannot be generated). */
  suppress?: readonly number[];
}

/** generate()'s options: sampling, length, end-of-sequence id and seed. */
export interface GenerateOptions extends SampleOptions {
  /** New tokens per sequence at most (also limited by the decoder's context). */
  maxNewTokens: number;
  /** A sequence stops after emitting this id (it is included in the output). None: run to the limit. */
  eosId?: number;
  /** Seed of the sampling RNG (default 0): the same seed, prompts and weights give the same samples. */
  seed?: number;
}

/** Generated ids, their log-probs (temperature 1) and whether each sequence reached eosId. */
export interface GenerateResult {
  /** Generated ids per sequence (the end-of-sequence id included when reached). */
  tokens: number[][];
  /** log p(token | prefix) under the model at temperature 1, one per generated token. */
  logProbs: number[][];
  /** Whether each sequence ended with eosId (false: it hit the length limit). */
  finished: boolean[];
}

/** A small seeded RNG (mulberry32) for sampling, independent of the GPU's random streams. */
export class SamplerRng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return ((z ^ (z >>> 14)) >>> 0) / 4294967296;
  }
}

/**
 * Draws one token from a row of logits (`logits[offset .. offset + V)`). Returns the id and its
 * log-probability under softmax(logits) (temperature 1), computed in float64.
 */
export function sampleToken(logits: ArrayLike<number>, offset: number, V: number, opts: SampleOptions, rng: SamplerRng): { id: number; logProb: number } {
  const temperature = opts.temperature ?? 1;
  const topK = opts.topK ?? 0;
  const banned = opts.suppress && opts.suppress.length ? new Set(opts.suppress) : null;
  let maxV = -Infinity;
  let argmax = 0;
  let best = -Infinity;
  for (let i = 0; i < V; i++) {
    const x = logits[offset + i];
    if (x > maxV) maxV = x;
    if (x > best && !banned?.has(i)) {
      best = x;
      argmax = i;
    }
  }
  let lse = 0;
  for (let i = 0; i < V; i++) lse += Math.exp(logits[offset + i] - maxV);
  const logZ = maxV + Math.log(lse);
  // log p under the whole distribution (temperature 1, nothing suppressed): what the RL losses recompute
  const logProb = (id: number): number => logits[offset + id] - logZ;
  if (temperature === 0 || topK === 1) return { id: argmax, logProb: logProb(argmax) };
  // candidates: all allowed ids, or the k largest of them (ties broken by the lower id)
  let ids = Array.from({ length: V }, (_, i) => i);
  if (banned) ids = ids.filter((i) => !banned.has(i));
  if (topK > 0 && topK < V) ids = ids.sort((a, b) => logits[offset + b] - logits[offset + a] || a - b).slice(0, topK);
  const weights = ids.map((i) => Math.exp((logits[offset + i] - maxV) / temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  let u = rng.next() * total;
  for (let j = 0; j < ids.length; j++) {
    u -= weights[j];
    if (u < 0) return { id: ids[j], logProb: logProb(ids[j]) };
  }
  const last = ids[ids.length - 1]; // rounding: u landed on the total
  return { id: last, logProb: logProb(last) };
}

/**
 * Generates continuations of a batch of prompts (token ids with one `<image>` per image; prompts
 * may have different lengths). images: (N, C, H, W), every prompt's images in order (sequence 0
 * first), or null. Runs in eval mode (restoring the previous mode) and without gradients.
 */
export async function generate(model: VisionLanguageModel, prompts: readonly (readonly number[])[], images: Tensor | null, opts: GenerateOptions): Promise<GenerateResult> {
  const op = 'generate';
  checkOptions(op, opts);
  check(opts !== undefined && Array.isArray(prompts), op, () => 'generate(model, prompts: number[][], images, { maxNewTokens, … }) needs a list of prompts and an options object');
  const temperature = opts.temperature ?? 1;
  check(Number.isInteger(opts.maxNewTokens) && opts.maxNewTokens >= 0, op, () => `maxNewTokens must be a non-negative integer, got ${opts.maxNewTokens}`);
  check(temperature >= 0 && Number.isFinite(temperature), op, () => `temperature must be >= 0, got ${temperature}`);
  check(opts.topK === undefined || (Number.isInteger(opts.topK) && opts.topK >= 0), op, () => `topK must be a non-negative integer, got ${opts.topK}`);
  const cfg = model.config;
  const batch = model.prepareBatch(prompts, { padSide: 'left' });
  const { B, T } = batch;
  const maxNew = Math.min(opts.maxNewTokens, cfg.maxPositions - T);
  const result: GenerateResult = { tokens: prompts.map(() => []), logProbs: prompts.map(() => []), finished: prompts.map(() => false) };
  if (maxNew <= 0) return result;
  const rng = new SamplerRng(opts.seed ?? 0);
  const sampling: SampleOptions = { ...opts, suppress: [...(opts.suppress ?? []), cfg.imageTokenId] };
  const V = cfg.vocabSize;
  const wasTraining = model.training;
  model.eval();
  // the last sampled token is never fed back, so the cache needs T + maxNew − 1 positions
  const cache = model.createCache(B, T + maxNew - 1);
  const nextPosition = batch.layouts.map((l) => l.ids.length);
  let logits: Tensor | null = null;
  try {
    logits = noGrad(() => tidy(() => model.forward(model.toInputs(batch, images), { cache, lastOnly: true }))); // (B, V)
    for (let step = 0; ; step++) {
      const data = await logits.toArray();
      logits.dispose();
      logits = null;
      const feed = new Int32Array(B).fill(cfg.padId);
      for (let b = 0; b < B; b++) {
        if (result.finished[b]) continue;
        const { id, logProb } = sampleToken(data, b * V, V, sampling, rng);
        result.tokens[b].push(id);
        result.logProbs[b].push(logProb);
        if (id === opts.eosId) result.finished[b] = true;
        feed[b] = id;
      }
      if (step + 1 >= maxNew || result.finished.every((f) => f)) break;
      // stopped rows keep decoding padding (their outputs are ignored): the batch stays rectangular
      const positions = Int32Array.from(nextPosition, (p) => p + step);
      logits = noGrad(() => tidy(() => model.forward({
        tokens: tensor(feed, { shape: [B, 1], dtype: 'i32' }),
        positions: tensor(positions, { shape: [B, 1], dtype: 'i32' }),
        images: null, gatherIndex: null, keyValid: null,
      }, { cache, lastOnly: true })));
    }
  } finally {
    logits?.dispose();
    cache.dispose();
    model.train(wasTraining);
  }
  return result;
}
