// Model and training presets, selectable by name (docs/trimpi.md section 4):
//   tiny  the tests' model: trains in seconds on lavapipe
//   cpu   the CPU demo: width 128, 4 + 4 layers; lavapipe trains it in minutes
//   gpu   for a lent GPU: width 384, ViT 6 layers + decoder 8 layers, context 3,072 (ClevrPolicy N = 6 with the policy in context)
import { TrimpiError } from '../gpu/errors.js';
import type { VlmConfig } from './vlm.js';

/** The model presets: 'tiny' (tests), 'cpu' (lavapipe-sized) and 'gpu'. */
export const PRESET_NAMES = ['tiny', 'cpu', 'gpu'] as const;
/** One of PRESET_NAMES. */
export type PresetName = (typeof PRESET_NAMES)[number];

/** Optimizer and schedule defaults that go with a model preset. */
export interface TrainPreset {
  lr: number;
  minLr: number;
  warmupSteps: number;
  weightDecay: number;
  maxGradNorm: number;
  betas: [number, number];
  /** Sequences per optimizer step (split into micro-batches as memory requires). */
  batchSize: number;
}

/** A model configuration with its training defaults (preset()). */
export interface Preset {
  name: PresetName;
  model: VlmConfig;
  train: TrainPreset;
}

// Token ids follow src/trimpi/data/tokenizer.ts: <pad> = 0, <image> = 4.
const COMMON = { imageTokenId: 4, padId: 0, channels: 3, mlpRatio: 4, layerNormEps: 1e-5, initStd: 0.02, seed: 0 };
// rendered scenes: [0, 1] pixels, mean ~0.66 (the grey ground), std ~0.14 (measured over 64 scenes)
const PIXELS = { pixelMean: 0.66, pixelStd: 0.14 };

const MODELS: Record<PresetName, Omit<VlmConfig, 'vocabSize'>> = {
  tiny: { ...COMMON, imageSize: 16, patchSize: 8, visionDim: 16, visionLayers: 1, visionHeads: 2, dim: 32, layers: 2, heads: 2, maxPositions: 64, dropout: 0 },
  cpu: { ...COMMON, ...PIXELS, imageSize: 64, patchSize: 8, visionDim: 128, visionLayers: 4, visionHeads: 4, dim: 128, layers: 4, heads: 4, maxPositions: 1024, dropout: 0 },
  // 3,072 positions: a depth-6 ClevrPolicy prompt with the policy in context is ~2.2-2.4K tokens,
  // plus 64 patch positions per image (policy crops included) and a ~270-token response
  gpu: { ...COMMON, ...PIXELS, imageSize: 64, patchSize: 8, visionDim: 384, visionLayers: 6, visionHeads: 6, dim: 384, layers: 8, heads: 6, maxPositions: 3072, dropout: 0.1 },
};

const TRAIN: Record<PresetName, TrainPreset> = {
  tiny: { lr: 3e-3, minLr: 3e-4, warmupSteps: 5, weightDecay: 0.01, maxGradNorm: 1, betas: [0.9, 0.95], batchSize: 4 },
  cpu: { lr: 1e-3, minLr: 1e-4, warmupSteps: 100, weightDecay: 0.1, maxGradNorm: 1, betas: [0.9, 0.95], batchSize: 16 },
  gpu: { lr: 6e-4, minLr: 6e-5, warmupSteps: 500, weightDecay: 0.1, maxGradNorm: 1, betas: [0.9, 0.95], batchSize: 32 },
};

/**
 * The preset `name` with the vocabulary size of the tokenizer in use (`tokenizer.size`) and any
 * model overrides (e.g. `{ seed: 3, maxPositions: 512 }`).
 */
export function preset(name: string, vocabSize: number, overrides: Partial<Omit<VlmConfig, 'vocabSize'>> = {}): Preset {
  if (!(PRESET_NAMES as readonly string[]).includes(name)) {
    throw new TrimpiError('preset', `unknown preset '${name}' (expected one of ${PRESET_NAMES.join(', ')})`);
  }
  if (!Number.isInteger(vocabSize) || vocabSize <= 4) throw new TrimpiError('preset', `vocabSize must be the tokenizer's size (an integer > 4), got ${vocabSize}`);
  const n = name as PresetName;
  return { name: n, model: { ...MODELS[n], ...overrides, vocabSize }, train: { ...TRAIN[n], betas: [...TRAIN[n].betas] } };
}
