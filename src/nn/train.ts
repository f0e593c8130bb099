// Training-loop pieces: AdamW parameter groups (decoupled weight decay on matrices only), the
// warmup + cosine learning-rate schedule, and a Trainer step with gradient accumulation, global-norm
// clipping and seeded, resumable randomness. Nothing here reads the GPU back: a step returns its
// loss and gradient norm as tensors, to be read whenever convenient.
import { AdamW, ParamGroup } from './optim.js';
import { noGrad } from '../tensor/autograd.js';
import { check } from '../tensor/errors.js';
import { tidy } from '../tensor/memory.js';
import { add, manualSeed, mul } from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Module } from './module.js';

/**
 * Two AdamW groups: parameters flagged `decay` (the matrices of Linear layers) with `weightDecay`,
 * and the rest (LayerNorm scales and shifts, biases, token/position embeddings) with none.
 */
export function parameterGroups(model: Module, weightDecay: number): ParamGroup[] {
  const decay: Tensor[] = [];
  const noDecay: Tensor[] = [];
  for (const [, p] of model.namedParameters()) (p.decay ? decay : noDecay).push(p.value);
  return [{ params: decay, weightDecay }, { params: noDecay, weightDecay: 0 }];
}

export interface ScheduleOptions {
  /** Peak learning rate, reached at the end of the warmup. */
  lr: number;
  /** Final learning rate of the cosine decay (default lr / 10). */
  minLr?: number;
  /** Steps of linear warmup from lr / warmupSteps to lr (default 0). */
  warmupSteps?: number;
  /** Step at which the cosine reaches minLr (held there afterwards). */
  totalSteps: number;
}

/**
 * Learning rate of step `step` (0-based): linear warmup over warmupSteps, then a half cosine from
 * lr down to minLr at totalSteps, then minLr.
 */
export function warmupCosine(step: number, o: ScheduleOptions): number {
  const warmup = o.warmupSteps ?? 0;
  const minLr = o.minLr ?? o.lr / 10;
  if (step < warmup) return (o.lr * (step + 1)) / warmup;
  const span = Math.max(1, o.totalSteps - warmup);
  const progress = Math.min(1, (step - warmup) / span);
  return minLr + 0.5 * (1 + Math.cos(Math.PI * progress)) * (o.lr - minLr);
}

export interface TrainerOptions extends ScheduleOptions {
  weightDecay?: number;
  betas?: [number, number];
  eps?: number;
  /** Clip the global gradient norm to this value (0: off; default 1). */
  maxGradNorm?: number;
  /** Seed of the per-step random streams (dropout). Default 0. */
  seed?: number;
}

export interface StepResult {
  /** Mean of the micro-batches' losses, a 1-element tensor (dispose it, or call the step inside a tidy()). */
  loss: Tensor;
  /** Global gradient norm before clipping, a 1-element tensor (same ownership as loss). */
  gradNorm: Tensor;
  /** The learning rate this step used. */
  lr: number;
  /** The step's 0-based index. */
  step: number;
}

/** The per-step seed: a 32-bit mix of the run seed and the step index (splitmix-style finaliser). */
export function stepSeed(seed: number, step: number): number {
  let z = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(step + 1, 0x85ebca6b)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x7feb352d) >>> 0;
  z = Math.imul(z ^ (z >>> 15), 0x846ca68b) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

/**
 * Optimizer steps over micro-batches. Each step: set the scheduled learning rate, re-seed the
 * engine's RNG from (seed, step) so dropout masks depend only on the step (a resumed run draws what
 * an uninterrupted one would), accumulate gradients of loss / n over the n micro-batches, then one
 * AdamW update with global-norm clipping. The optimizer's state and step count are what a
 * checkpoint must save (saveCheckpoint does).
 */
export class Trainer<Batch> {
  readonly optimizer: AdamW;

  constructor(
    readonly model: Module,
    readonly options: TrainerOptions,
  ) {
    const o = options;
    check(o.lr > 0 && Number.isInteger(o.totalSteps) && o.totalSteps > 0, 'Trainer', () => `lr must be > 0 and totalSteps a positive integer, got lr ${o.lr}, totalSteps ${o.totalSteps}`);
    this.optimizer = new AdamW(parameterGroups(model, o.weightDecay ?? 0.1), {
      lr: o.lr, betas: o.betas ?? [0.9, 0.95], eps: o.eps ?? 1e-8, maxGradNorm: o.maxGradNorm ?? 1,
    });
  }

  /** Optimizer steps taken so far (restored by loadCheckpoint). */
  get step(): number {
    return this.optimizer.step;
  }

  /** The learning rate of step `step` under this trainer's schedule. */
  lrAt(step: number): number {
    return warmupCosine(step, this.options);
  }

  /**
   * One optimizer step over `microBatches` (gradient accumulation: the loss is their mean).
   * `lossOf` runs the model on one micro-batch and returns a scalar loss; it is called inside a
   * tidy(), so everything it creates is freed once its gradients are accumulated.
   */
  trainStep(microBatches: readonly Batch[], lossOf: (batch: Batch) => Tensor): StepResult {
    const n = microBatches.length;
    check(n >= 1, 'Trainer.trainStep', () => 'no micro-batches given');
    const step = this.optimizer.step;
    const lr = this.lrAt(step);
    this.optimizer.lr = lr;
    manualSeed(stepSeed(this.options.seed ?? 0, step));
    this.model.train();
    this.optimizer.zeroGrad();
    return tidy(() => {
      let total: Tensor | null = null;
      for (const mb of microBatches) {
        const loss = tidy(() => {
          const l = lossOf(mb);
          check(l.numel === 1 && l.requiresGrad, 'Trainer.trainStep', () => `lossOf must return a scalar loss that requires grad, got ${l.describe()}`);
          (n === 1 ? l : mul(l, 1 / n)).backward();
          return l.detach();
        });
        total = total ? noGrad(() => add(total!, loss)) : loss;
      }
      const meanLoss = n === 1 ? total! : noGrad(() => mul(total!, 1 / n));
      const gradNorm = this.optimizer.stepUpdate();
      this.optimizer.zeroGrad();
      return { loss: meanLoss, gradNorm, lr, step };
    });
  }

  /** Frees the optimizer state (the model is the caller's). */
  dispose(): void {
    this.optimizer.dispose();
  }
}
