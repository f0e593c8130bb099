// What `npm run bench` needs from src/nn: build a preset model, run timed training steps and a timed
// batched generation on random data, and report throughput with a FLOP count, so the bench can
// state the fraction of the device's measured matmul ceiling that a training step reaches.
import { check } from '../gpu/errors.js';
import type { MatmulCase } from '../kernels/matmul_tuning.js';
import { execStats, profile } from '../gpu/stats.js';
import { div, gt, maximum, neg, rand, slice, sum, tensor, tokenLogProbs, where } from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import { generate } from './generate.js';
import { preset } from './presets.js';
import { Trainer } from './train.js';
import { VisionLanguageModel, VlmBatch, VlmConfig } from './vlm.js';

/** Options of benchmarkPreset(): the preset, batch and sequence sizes, steps to time. */
export interface PresetBenchOptions {
  /** Preset name: 'tiny', 'cpu' or 'gpu'. */
  preset: string;
  /** The tokenizer's vocabulary size. */
  vocabSize: number;
  /** Sequences per training step (default: the preset's batch size). */
  batchSize?: number;
  /** Text tokens per training sequence (default 256; images add P positions each). */
  textTokens?: number;
  /** Images per sequence (default 1). */
  imagesPerSequence?: number;
  /** Timed training steps (default 5), after `warmupSteps` untimed ones (default 1: shader compilation). */
  trainSteps?: number;
  warmupSteps?: number;
  /** Sequences sampled in parallel (default batchSize) and new tokens each (default 32; at least 2, else sampling is skipped). */
  sampleBatch?: number;
  sampleTokens?: number;
  /** Prompt text tokens for sampling (default textTokens / 2). */
  promptTokens?: number;
  /** Also profile one decode step by kernel (timestamp queries; the device needs `timestamp-query`). */
  profileDecode?: boolean;
}

/** GPU time of one kernel in one decode step (profiled generations of n and 2 tokens, differenced). */
export interface DecodeKernelTime {
  op: string;
  kernel: string;
  /** Dispatches of this kernel per decode step. */
  calls: number;
  /** GPU ms per decode step. */
  ms: number;
}

/** What benchmarkPreset() measured: step times, throughput and FLOP rates of training and sampling. */
export interface PresetBenchResult {
  preset: string;
  config: VlmConfig;
  parameters: number;
  batchSize: number;
  /** Decoder positions per training sequence (text + image patches). */
  positionsPerSequence: number;
  /** Wall time of each timed training step, ms (each waits for its loss to be read back). */
  trainStepMs: number[];
  /** Median step time, ms. */
  trainStepMedianMs: number;
  /** Decoder positions (text + image) trained per second, at the median step time. */
  trainPositionsPerSec: number;
  /** Text tokens (the loss's targets) trained per second. */
  trainTextTokensPerSec: number;
  /** FLOPs of one training step (matmuls and attention, forward + backward), the numerator of the ceiling fraction. */
  trainFlopsPerStep: number;
  /** trainFlopsPerStep / median step time. */
  trainFlopsPerSec: number;
  /** Generated tokens per second over the whole batched generation (prefill included). */
  sampleTokensPerSec: number;
  /** Median wall time of the whole generation (prefill + sampleTokens tokens), ms. */
  sampleMs: number;
  sampleBatch: number;
  sampleTokens: number;
  /** Median wall time of the prefill alone (a generation of one token), ms. */
  prefillMs: number;
  /** Prompt positions (text + image patches, padding included) per second in the prefill. */
  prefillPositionsPerSec: number;
  /** Decode: (sampleMs − prefillMs) / (sampleTokens − 1) per step, and new tokens per second. */
  decodeStepMs: number;
  decodeTokensPerSec: number;
  /** Floors of one decode step: FLOPs (matmuls + attention over the cache) and bytes (weights + KV cache read once). */
  decodeFlopsPerStep: number;
  decodeBytesPerStep: number;
  /** Dispatches per decode step (from the device's counters: generations of n and 1 tokens, differenced). */
  decodeDispatchesPerStep: number;
  /** With profileDecode: GPU time per decode step by kernel, most first (each dispatch in its own pass). */
  decodeProfile: DecodeKernelTime[];
}

/**
 * FLOPs and bytes of one decode step of `cfg` for B sequences with `context` cached positions: each
 * new token costs 2·K·N per linear map of the decoder and the output head, and 4·context·C per
 * attention layer; the step reads every decoder weight once and each layer's cached keys and values.
 */
export function decodeFloors(cfg: VlmConfig, B: number, context: number): { flops: number; bytes: number } {
  const blockMatmul = (4 + 2 * cfg.mlpRatio) * cfg.dim * cfg.dim;
  const flops = B * (2 * (cfg.layers * blockMatmul + cfg.vocabSize * cfg.dim) + cfg.layers * 4 * context * cfg.dim);
  const bytes = 4 * (cfg.layers * blockMatmul + cfg.vocabSize * cfg.dim) + cfg.layers * 2 * B * context * cfg.dim * 4;
  return { flops, bytes };
}

/**
 * FLOPs of one training step of `cfg` on B sequences of T decoder positions with `images` images in
 * all: 6·rows·K·N for every linear map (forward 2, backward 4), 2·2·T²·C per attention layer forward
 * (halved when causal) and twice that backward.
 */
export function trainFlops(cfg: VlmConfig, B: number, T: number, images: number): number {
  const P = (cfg.imageSize / cfg.patchSize) ** 2; // ViT tokens per image (before any merging)
  const blockMatmul = (C: number): number => (4 + 2 * cfg.mlpRatio) * C * C;
  const dec = B * T * (cfg.layers * blockMatmul(cfg.dim) + cfg.vocabSize * cfg.dim);
  // the projector maps P / k² merged tokens of k²·visionDim each: P·visionDim·dim multiply-adds either way
  const vis = images * P * (cfg.visionLayers * blockMatmul(cfg.visionDim) + cfg.channels * cfg.patchSize ** 2 * cfg.visionDim + cfg.visionDim * cfg.dim);
  const attnFwd = cfg.layers * B * 2 * T * T * cfg.dim + cfg.visionLayers * images * 4 * P * P * cfg.visionDim;
  return 6 * (dec + vis) + 3 * attnFwd;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * The training objective of the bench: the VM-CPT loss (src/trimpi/losses/vmcpt.ts, paper Eq. 2),
 * written here with tensor ops because src/nn stands below src/trimpi. The next-token NLL over the
 * text tokens (textMask (B, T) f32, 1 on text), a mean per sequence, then over the sequences with any.
 */
function textTokenLoss(logits: Tensor, tokens: Tensor, textMask: Tensor): Tensor {
  const T = logits.shape[1];
  const nll = neg(tokenLogProbs(slice(logits, 1, 0, T - 1), slice(tokens, 1, 1, T)));
  const m = slice(textMask, 1, 1);
  const perSeq = div(sum(where(m, nll, 0), 1), maximum(sum(m, 1), 1));
  return div(sum(perSeq), maximum(sum(gt(sum(m, 1), 0)), 1));
}

/** Builds the preset's model and times training steps and batched sampling on random data. */
export async function benchmarkPreset(opts: PresetBenchOptions): Promise<PresetBenchResult> {
  const p = preset(opts.preset, opts.vocabSize);
  const cfg = p.model;
  const B = opts.batchSize ?? p.train.batchSize;
  const textTokens = opts.textTokens ?? 256;
  const perSeq = opts.imagesPerSequence ?? 1;
  const trainSteps = opts.trainSteps ?? 5;
  const warmup = opts.warmupSteps ?? 1;
  check(trainSteps >= 1 && B >= 1 && textTokens >= 2, 'benchmarkPreset', () => `need trainSteps >= 1, batchSize >= 1, textTokens >= 2 (got ${trainSteps}, ${B}, ${textTokens})`);
  const model = new VisionLanguageModel(cfg);
  // deterministic pseudo-random ids, never a special token (ids < 8)
  let state = 12345;
  const word = (): number => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return 8 + (state % (cfg.vocabSize - 8));
  };
  const sequence = (n: number): number[] => [1, ...Array<number>(perSeq).fill(cfg.imageTokenId), ...Array.from({ length: n - 1 }, word)];
  const S = cfg.imageSize;
  const trainer = new Trainer<VlmBatch>(model, { lr: p.train.lr, warmupSteps: 0, totalSteps: warmup + trainSteps, weightDecay: p.train.weightDecay });
  const batch = model.prepareBatch(Array.from({ length: B }, () => sequence(textTokens)));
  const images = rand([batch.numImages, cfg.channels, S, S], { seed: 1 });
  const textMask = model.textMask(batch);
  try {
    const lossOf = (b: VlmBatch) => {
      const inputs = model.toInputs(b, images);
      return textTokenLoss(model.forward(inputs), inputs.tokens, tensor(textMask));
    };
    const stepMs: number[] = [];
    for (let s = 0; s < warmup + trainSteps; s++) {
      const t0 = performance.now();
      const r = trainer.trainStep([batch], lossOf);
      await r.loss.item();
      r.loss.dispose();
      r.gradNorm.dispose();
      r.skipped.dispose();
      if (s >= warmup) stepMs.push(performance.now() - t0);
    }
    const T = batch.T;
    const flops = trainFlops(cfg, B, T, batch.numImages);
    const med = median(stepMs);
    const textPerSeq = textMask.reduce((n, row) => n + row.reduce((a, x) => a + x, 0), 0) / B;

    const sampleBatch = opts.sampleBatch ?? B;
    const sampleTokens = opts.sampleTokens ?? 32;
    let sampleMs = 0;
    let prefillMs = 0;
    let promptPositions = 0;
    let decodeDispatchesPerStep = 0;
    let decodeProfile: DecodeKernelTime[] = [];
    if (sampleBatch > 0 && sampleTokens > 1) {
      const prompts = Array.from({ length: sampleBatch }, () => sequence(opts.promptTokens ?? Math.max(2, textTokens >> 1)));
      promptPositions = model.prepareBatch(prompts, { padSide: 'left' }).T;
      const promptImages = rand([sampleBatch * perSeq, cfg.channels, S, S], { seed: 2 });
      const timed = async (maxNewTokens: number): Promise<number> => {
        const t0 = performance.now();
        await generate(model, prompts, promptImages, { maxNewTokens, temperature: 1, seed: 3 });
        return performance.now() - t0;
      };
      try {
        await generate(model, prompts, promptImages, { maxNewTokens: 2, temperature: 0 }); // compiles the shaders
        // interleaved, three of each: the decode time is the difference of two medians
        const pre: number[] = [];
        const full: number[] = [];
        for (let i = 0; i < 3; i++) {
          pre.push(await timed(1));
          full.push(await timed(sampleTokens));
        }
        prefillMs = median(pre);
        sampleMs = median(full);
        const dispatchesOf = async (n: number): Promise<number> => {
          const d0 = execStats().dispatches;
          await generate(model, prompts, promptImages, { maxNewTokens: n, temperature: 1, seed: 3 });
          return execStats().dispatches - d0;
        };
        decodeDispatchesPerStep = ((await dispatchesOf(sampleTokens)) - (await dispatchesOf(1))) / (sampleTokens - 1);
        if (opts.profileDecode) {
          // a decode step's kernels: a profiled generation of n tokens minus one of two (the prefill and one
          // decode step). Not one of a single token: its KV cache holds the prompt exactly, so the prefill's
          // copy into it is a contiguous kernel under another key, and it would not cancel.
          const n = Math.min(sampleTokens, 18);
          const one = await profile(() => generate(model, prompts, promptImages, { maxNewTokens: 2, temperature: 1, seed: 3 }));
          const many = await profile(() => generate(model, prompts, promptImages, { maxNewTokens: n, temperature: 1, seed: 3 }));
          const key = (k: { op: string; kernel: string }): string => `${k.op}\u0000${k.kernel}`;
          const prefill = new Map(one.kernels.map((k) => [key(k), k]));
          decodeProfile = many.kernels.map((k) => {
            const p = prefill.get(key(k));
            return { op: k.op, kernel: k.kernel, calls: (k.calls - (p?.calls ?? 0)) / (n - 2), ms: (k.ms - (p?.ms ?? 0)) / (n - 2) };
          }).filter((k) => k.calls > 0).sort((a, b) => b.ms - a.ms);
        }
      } finally {
        promptImages.dispose();
      }
    }
    const decodeStepMs = sampleMs > 0 ? Math.max(sampleMs - prefillMs, 0) / (sampleTokens - 1) : 0;
    const floors = decodeFloors(cfg, sampleBatch, promptPositions + sampleTokens / 2);
    return {
      preset: p.name, config: cfg, parameters: model.numParameters(), batchSize: B, positionsPerSequence: T,
      trainStepMs: stepMs, trainStepMedianMs: med,
      trainPositionsPerSec: (B * T) / (med / 1000), trainTextTokensPerSec: (B * textPerSeq) / (med / 1000),
      trainFlopsPerStep: flops, trainFlopsPerSec: flops / (med / 1000),
      sampleTokensPerSec: sampleMs > 0 ? (sampleBatch * sampleTokens) / (sampleMs / 1000) : 0,
      sampleMs, sampleBatch, sampleTokens,
      prefillMs, prefillPositionsPerSec: prefillMs > 0 ? (sampleBatch * promptPositions) / (prefillMs / 1000) : 0,
      decodeStepMs, decodeTokensPerSec: decodeStepMs > 0 ? sampleBatch / (decodeStepMs / 1000) : 0,
      decodeFlopsPerStep: floors.flops, decodeBytesPerStep: floors.bytes, decodeDispatchesPerStep, decodeProfile,
    };
  } finally {
    images.dispose();
    trainer.dispose();
    model.dispose();
  }
}

/**
 * The matmuls of a preset model that a per-adapter tile sweep should measure (`trimpi tune`): every
 * linear map of the decoder and the ViT forward (x @ W, W (in, out) row-major) and its input gradient
 * (dy @ Wᵀ), and the tied vocabulary head (h @ Eᵀ), at the rows of a training step (batchSize
 * sequences of one image and `textTokens` text positions) and of a decode step (`decodeRows`
 * sequences, one position each).
 */
export function presetMatmulCases(name: string, vocabSize: number, opts: { textTokens?: number; decodeRows?: number } = {}): MatmulCase[] {
  const p = preset(name, vocabSize);
  const c = p.model;
  const P = (c.imageSize / c.patchSize) ** 2;
  const trainRows = p.train.batchSize * (P + (opts.textTokens ?? 128));
  const decodeRows = opts.decodeRows ?? 64;
  const hidden = (w: number): number => Math.round(c.mlpRatio * w);
  const linears = (w: number): [number, number][] => [[w, 3 * w], [w, w], [w, hidden(w)], [hidden(w), w]];
  const cases: MatmulCase[] = [];
  for (const M of [trainRows, decodeRows]) {
    for (const [K, N] of linears(c.dim)) cases.push({ M, K, N, b: 'rows' });
    cases.push({ M, K: c.dim, N: vocabSize, b: 'transposed' });
  }
  for (const [K, N] of linears(c.dim)) cases.push({ M: trainRows, K: N, N: K, b: 'transposed' });
  for (const [K, N] of linears(c.visionDim)) cases.push({ M: p.train.batchSize * P, K, N, b: 'rows' });
  return cases;
}
