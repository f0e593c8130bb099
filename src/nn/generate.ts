// Batched sampling with a KV cache: greedy, temperature and top-k, stopping at end-of-sequence or a
// maximum length, returning token ids and their log-probabilities under the model.
//
// Design: prompts are left-padded so every sequence's next token sits at the same cache slot (the
// padding is masked out of attention, and learned positions count from each row's first real
// token, so a padded row computes exactly what it would alone). The prompt (with its images) is
// prefilled in one forward; then one forward per new token over the cached keys and values.
//
// Sampling runs on the GPU (the Gumbel-max trick over a seeded uniform draw) and the sampled ids
// feed the next step directly, so a decode step never waits for a readback: the ids and log-probs
// collect in (B, maxNew) buffers on the GPU, and the host reads a (B,) "done" mask only every few
// steps to stop once every sequence has emitted end-of-sequence. The returned log-probs are
// log p(token) under the model at temperature 1 (log-softmax of the raw logits), what the RL losses
// need, whatever temperature/top-k drew the token.
import { noGrad } from '../tensor/autograd.js';
import { check } from '../gpu/errors.js';
import { tidy } from '../tensor/memory.js';
import { add, argmax, assign, div, eq, ge, log, maximum, neg, rand, reshape, sampleInto, slice, tensor, tokenLogProbs, topk, where, zeros } from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import type { VisionLanguageModel } from './vlm.js';
import { stepSeed } from './train.js';
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

let fusedSampling = true;
/** @internal Benchmarks: decode with the composed sampler (sampleTokens + bookkeeping ops) instead of the fused kernel. */
export function setFusedSampling(on: boolean): void {
  fusedSampling = on;
}

/** Decode steps between two reads of the done mask (a read waits for the GPU; more steps: more wasted decoding). */
const STOP_CHECK_EVERY = 8;

/** (V,): −∞ at the suppressed ids (those inside [0, V)), 0 elsewhere: added to the scores before a draw. */
function suppressionMask(V: number, suppress: readonly number[]): Tensor {
  const mask = new Float32Array(V);
  for (const id of suppress) if (id >= 0 && id < V) mask[id] = -Infinity;
  return tensor(mask, { shape: [V] });
}

/**
 * Draws one token per row of logits (B, V) on the GPU. Returns the ids (B,) i32 and their
 * log-probabilities under softmax(logits) at temperature 1, (B,).
 *
 * temperature 0: argmax (lowest id on ties). Otherwise the Gumbel-max trick: argmax over
 * logits / temperature − log(−log u), u ~ U[0, 1) from `seed`, which draws from softmax(logits /
 * temperature) exactly. topK keeps the ids whose logit reaches the k-th largest (all of a tie at
 * the k-th value). Suppressed ids get −∞ and are never drawn.
 */
export function sampleTokens(logits: Tensor, opts: SampleOptions, seed: number): { ids: Tensor; logProbs: Tensor } {
  const [B, V] = logits.shape;
  const temperature = opts.temperature ?? 1;
  const topK = opts.topK ?? 0;
  let scores = logits;
  if (opts.suppress && opts.suppress.length) scores = add(scores, suppressionMask(V, opts.suppress));
  if (temperature > 0 && topK > 0 && topK < V) {
    const kth = slice(topk(scores, topK, 1).values, 1, topK - 1, topK); // (B, 1)
    scores = where(ge(scores, kth), scores, -Infinity);
  }
  if (temperature > 0) {
    const u = rand([B, V], { seed });
    scores = add(div(scores, temperature), neg(log(neg(log(u)))));
  }
  const ids = argmax(scores, 1); // (B,) i32
  return { ids, logProbs: tokenLogProbs(logits, ids) };
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
  const seed = opts.seed ?? 0;
  const sampling: SampleOptions = { ...opts, suppress: [...(opts.suppress ?? []), cfg.imageTokenId] };
  const eos = opts.eosId;
  // without top-k, one fused kernel per step (ops.sampleInto) replaces sampleTokens and the bookkeeping
  const fused = fusedSampling && !(temperature > 0 && (opts.topK ?? 0) > 0 && (opts.topK ?? 0) < cfg.vocabSize);
  const suppressMask = fused ? suppressionMask(cfg.vocabSize, sampling.suppress ?? []) : null;
  const wasTraining = model.training;
  model.eval();
  // the last sampled token is never fed back, so the cache needs T + maxNew − 1 positions
  const cache = model.createCache(B, T + maxNew - 1);
  const nextPosition = batch.layouts.map((l) => l.ids.length);
  // on the GPU: every step's ids and log-probs (B, maxNew), and 1 for the rows that emitted eos
  const ids = zeros([B, maxNew], { dtype: 'i32' });
  const logProbs = zeros([B, maxNew]);
  const done = zeros([B]);
  // the next step's input ids (B, 1); the fused kernel rewrites one tensor in place (the forward that
  // reads it was dispatched before the kernel that writes it)
  const fusedFeed = fused ? zeros([B, 1], { dtype: 'i32' }) : null;
  let feed: Tensor | null = null;
  let steps = 0;
  try {
    while (steps < maxNew) {
      const step = steps++;
      const next: Tensor = noGrad(() => tidy(() => {
        const inputs = step === 0 ? model.toInputs(batch, images) : {
          tokens: feed!, positions: tensor(Int32Array.from(nextPosition, (p) => p + step - 1), { shape: [B, 1], dtype: 'i32' }),
          images: null, gatherIndex: null, keyValid: null,
        };
        const logits = model.forward(inputs, { cache, lastOnly: true });
        // each step's uniform draw is seeded by the Trainer's (seed, step) mix
        if (fused) {
          // one kernel draws, scores and books the step (the same ids as the composed form below)
          sampleInto(logits, suppressMask, { ids, logProbs, done, feed: fusedFeed! }, { step, temperature, seed: stepSeed(seed, step), padId: cfg.padId, eosId: eos });
          return fusedFeed!;
        }
        const s = sampleTokens(logits, sampling, stepSeed(seed, step));
        assign(slice(ids, 1, step, step + 1), reshape(s.ids, [B, 1]));
        assign(slice(logProbs, 1, step, step + 1), reshape(s.logProbs, [B, 1]));
        // rows that stopped before this step decode padding (their outputs are ignored): the batch stays rectangular
        const fed = reshape(where(done, cfg.padId, s.ids), [B, 1]);
        if (eos !== undefined) assign(done, maximum(done, eq(s.ids, eos)));
        return fed;
      }));
      if (feed !== next) feed?.dispose();
      feed = next;
      // the only readback inside the loop: every few steps, whether every row has stopped
      if (eos !== undefined && steps < maxNew && steps % STOP_CHECK_EVERY === 0 && (await done.toArray()).every((d) => d === 1)) break;
    }
    const [idData, lpData] = await Promise.all([ids.toArray(), logProbs.toArray()]);
    for (let b = 0; b < B; b++) {
      for (let j = 0; j < steps; j++) {
        const id = idData[b * maxNew + j];
        result.tokens[b].push(id);
        result.logProbs[b].push(lpData[b * maxNew + j]);
        if (id === eos) {
          result.finished[b] = true;
          break;
        }
      }
    }
  } finally {
    for (const x of new Set([feed, fusedFeed, ids, logProbs, done, suppressMask])) x?.dispose();
    cache.dispose();
    model.train(wasTraining);
  }
  return result;
}
