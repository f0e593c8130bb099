// Training-loop pieces: AdamW parameter groups (decoupled weight decay on matrices only), the
// warmup + cosine learning-rate schedule, and a Trainer step with gradient accumulation, global-norm
// clipping, non-finite-step skipping and seeded, resumable randomness. Nothing here reads the GPU
// back: a step returns its loss, gradient norm and skipped flag as tensors, to be read whenever
// convenient; Trainer.checkNonFinite() is the one place that reads the skip counters.
import { AdamW, ParamGroup } from './optim.js';
import { noGrad } from '../tensor/autograd.js';
import { TrimpiError, check } from '../gpu/errors.js';
import { keep, tidy } from '../tensor/memory.js';
import { add, assign, fmap, manualSeed, mul, zeros } from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Module } from './module.js';

/**
 * Two AdamW groups: parameters flagged `decay` (the matrices of Linear layers) with `weightDecay`,
 * and the rest (LayerNorm scales and shifts, biases, token/position embeddings) with none. Frozen
 * parameters (`requiresGrad` false, e.g. the base model under applyLora) are left out, so a
 * Trainer built after applyLora trains the adapters only.
 */
export function parameterGroups(model: Module, weightDecay: number): ParamGroup[] {
  const decay: Tensor[] = [];
  const noDecay: Tensor[] = [];
  for (const [, p] of model.namedParameters()) if (!p.frozen) (p.decay ? decay : noDecay).push(p.value);
  return [{ params: decay, weightDecay }, { params: noDecay, weightDecay: 0 }];
}

/** The warmup + cosine learning-rate schedule (warmupCosine). */
export interface ScheduleOptions {
  /** Peak learning rate, reached at the end of the warmup (finite, > 0). */
  lr: number;
  /** Final learning rate of the cosine decay (default lr / 10; finite, >= 0). */
  minLr?: number;
  /** Steps of linear warmup from lr / warmupSteps to lr (default 0; an integer >= 0). */
  warmupSteps?: number;
  /**
   * Step at which the cosine reaches minLr (held there afterwards; a positive integer). A Trainer
   * can change it after construction with setTotalSteps().
   */
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

/** The per-step seed: a 32-bit mix of the run seed and the step index (splitmix-style finaliser). */
export function stepSeed(seed: number, step: number): number {
  let z = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(step + 1, 0x85ebca6b)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x7feb352d) >>> 0;
  z = Math.imul(z ^ (z >>> 15), 0x846ca68b) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

/** Options of a Trainer: its schedule, AdamW's hyperparameters, the seed and the skip limit. */
export interface TrainerOptions extends ScheduleOptions {
  /** AdamW's decoupled weight decay on the decayed group (default 0.1; finite, >= 0). */
  weightDecay?: number;
  /** AdamW's moment decay rates (default [0.9, 0.95]; each in [0, 1)). */
  betas?: [number, number];
  /** AdamW's epsilon (default 1e-8; finite, > 0). */
  eps?: number;
  /** Clip the global gradient norm to this value (0: off; default 1; finite, >= 0). */
  maxGradNorm?: number;
  /** Seed of the per-step random streams (dropout). Default 0 (an integer). */
  seed?: number;
  /**
   * checkNonFinite() throws once this many consecutive steps were skipped for a non-finite loss or
   * gradient norm (default 10; a positive integer, or Infinity to never throw).
   */
  maxConsecutiveSkips?: number;
}

/** What Trainer.trainStep returns. The tensors are the caller's: dispose them, or step inside a tidy(). */
export interface StepResult {
  /** Mean of the micro-batches' losses, a 1-element tensor. */
  loss: Tensor;
  /** Global gradient norm before clipping, a 1-element tensor. */
  gradNorm: Tensor;
  /**
   * 1 when the update was skipped because the loss or the gradient norm was NaN or ±Inf (parameters
   * and AdamW moments unchanged), else 0: a 1-element f32 tensor.
   */
  skipped: Tensor;
  /** The learning rate this step used. */
  lr: number;
  /** The step's 0-based index. */
  step: number;
}

/** Skipped-step counts, as read by Trainer.checkNonFinite(). */
export interface SkipStats {
  /** Skipped steps in a row, ending with the latest step (0 when the latest step was applied). */
  consecutive: number;
  /** Skipped steps since this Trainer was built. */
  total: number;
}

/** Throws a TrimpiError unless `x` is undefined (when `optional`) or a number satisfying `ok`. */
function checkOption(name: string, x: unknown, ok: (x: number) => boolean, want: string, optional = true): void {
  check((optional && x === undefined) || (typeof x === 'number' && ok(x)), 'Trainer', () => `${name} must be ${want}, got ${String(x)}`);
}

/**
 * Optimizer steps over micro-batches. Each step: set the scheduled learning rate, re-seed the
 * engine's RNG from (seed, step) so dropout masks depend only on the step (a resumed run draws what
 * an uninterrupted one would), accumulate gradients of loss / n over the n micro-batches, then one
 * AdamW update with global-norm clipping. The optimizer's state and step count are what a
 * checkpoint must save (saveCheckpoint does). It optimizes the model's parameters that are not
 * frozen when it is built: after applyLora, the adapters only (build it after applyLora, and
 * dispose it once the adapters are merged).
 *
 * Non-finite steps: a step whose mean loss or global gradient norm is NaN or ±Inf is skipped on the
 * GPU (AdamW.update: parameters and moments stay bit for bit, the bias corrections do not advance;
 * the step index, hence the schedule and the seeds, does advance). StepResult.skipped says so, and
 * the Trainer keeps GPU counters of consecutive and total skips. Nothing is read back inside a
 * step, so the error for a run that keeps diverging is raised by `await checkNonFinite()`: call it
 * where the loop reads the loss (every logging interval); it throws once `maxConsecutiveSkips` steps
 * in a row were skipped. The counters are not part of a checkpoint.
 *
 * Options are validated up front (TrimpiErrors for NaN, negative or out-of-range values).
 */
export class Trainer<Batch> {
  /** The AdamW over the model's trainable parameters (its state is what a checkpoint saves). */
  readonly optimizer: AdamW;
  private opts: TrainerOptions;
  /** [consecutive skips, total skips] on the GPU (f32, exact to 2^24). */
  private skipCounts: Tensor | null = null;

  /** Trains `model`'s trainable parameters with `options` (validated here; copied, see setTotalSteps). */
  constructor(
    /** The model being trained (the caller's: dispose() does not free it). */
    readonly model: Module,
    options: TrainerOptions,
  ) {
    check(typeof options === 'object' && options !== null && !Array.isArray(options), 'Trainer', () => `options must be an object ({ lr, totalSteps, … }), got ${String(options)}`);
    const o = options;
    const nonNegInt = (x: number): boolean => Number.isInteger(x) && x >= 0;
    checkOption('lr', o.lr, (x) => Number.isFinite(x) && x > 0, 'a finite number > 0', false);
    checkOption('totalSteps', o.totalSteps, (x) => Number.isInteger(x) && x > 0, 'a positive integer', false);
    checkOption('minLr', o.minLr, (x) => Number.isFinite(x) && x >= 0, 'a finite number >= 0');
    checkOption('warmupSteps', o.warmupSteps, nonNegInt, 'an integer >= 0');
    checkOption('seed', o.seed, Number.isInteger, 'an integer');
    checkOption('maxConsecutiveSkips', o.maxConsecutiveSkips, (x) => x === Infinity || (Number.isInteger(x) && x >= 1), 'a positive integer or Infinity');
    this.opts = { ...o };
    this.optimizer = new AdamW(parameterGroups(model, o.weightDecay ?? 0.1), {
      lr: o.lr, betas: o.betas ?? [0.9, 0.95], eps: o.eps ?? 1e-8, maxGradNorm: o.maxGradNorm ?? 1,
    });
  }

  /** The options in force (a copy of the constructor's, with any setTotalSteps applied). */
  get options(): Readonly<TrainerOptions> {
    return this.opts;
  }

  /** Optimizer steps taken so far, skipped ones included (restored by loadCheckpoint). */
  get step(): number {
    return this.optimizer.step;
  }

  /** The step at which the cosine schedule reaches minLr. */
  get totalSteps(): number {
    return this.opts.totalSteps;
  }

  /**
   * Changes the schedule's total length after construction (a positive integer), for runs budgeted
   * by time or epochs: estimate it up front, then call this once the budget is known (or whenever it
   * changes). Steps from now on follow the cosine of the new length (steps already taken keep the
   * learning rates they used; shortening below the current step holds minLr). A resumed run must be
   * given the same value again (keep it in the checkpoint's `extra`).
   */
  setTotalSteps(totalSteps: number): void {
    checkOption('totalSteps', totalSteps, (x) => Number.isInteger(x) && x > 0, 'a positive integer', false);
    this.opts = { ...this.opts, totalSteps };
  }

  /** The learning rate of step `step` under this trainer's schedule. */
  lrAt(step: number): number {
    return warmupCosine(step, this.opts);
  }

  /**
   * One optimizer step over `microBatches` (gradient accumulation: the loss is their mean).
   * `lossOf` runs the model on one micro-batch and returns a scalar loss; it is called inside a
   * tidy(), so everything it creates is freed once its gradients are accumulated. A non-finite loss
   * or gradient norm skips the update (see the class comment).
   */
  trainStep(microBatches: readonly Batch[], lossOf: (batch: Batch) => Tensor): StepResult {
    const n = microBatches.length;
    check(n >= 1, 'Trainer.trainStep', () => 'no micro-batches given');
    const step = this.optimizer.step;
    const lr = this.lrAt(step);
    this.optimizer.lr = lr;
    manualSeed(stepSeed(this.opts.seed ?? 0, step));
    this.model.train();
    this.optimizer.zeroGrad();
    const counts = this.counts();
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
      const { gradNorm, skipped } = this.optimizer.update({ loss: meanLoss });
      this.optimizer.zeroGrad();
      // [consecutive, total] <- [skipped ? consecutive + 1 : 0, total + skipped]
      noGrad(() => tidy(() => assign(counts, fmap('select(a + b, b * (a + 1.0), o0 == 0u)', counts, skipped))));
      return { loss: meanLoss, gradNorm, skipped, lr, step };
    });
  }

  private counts(): Tensor {
    if (!this.skipCounts) this.skipCounts = keep(zeros([2], { device: this.optimizer.params[0]?.device }));
    return this.skipCounts;
  }

  /**
   * Reads the skip counters (one small readback: call it where the loop reads the loss) and throws
   * a TrimpiError when the last `maxConsecutiveSkips` steps or more were all skipped for a
   * non-finite loss or gradient norm. Returns the counts otherwise.
   */
  async checkNonFinite(): Promise<SkipStats> {
    const [consecutive, total] = Array.from(await this.counts().toArray());
    const limit = this.opts.maxConsecutiveSkips ?? 10;
    if (consecutive >= limit) {
      const last = this.step - 1;
      throw new TrimpiError('Trainer', `the last ${consecutive} steps (${last - consecutive + 1} to ${last}) were all skipped: `
        + `their loss or gradient norm was NaN or Inf (maxConsecutiveSkips ${limit}; ${total} skipped in all). `
        + 'The weights are those of the last finite step: lower the learning rate, check the data for NaN/Inf, or resume from a checkpoint');
    }
    return { consecutive, total };
  }

  /** Frees the optimizer state and the skip counters (the model is the caller's). */
  dispose(): void {
    this.optimizer.dispose();
    this.skipCounts?.dispose();
    this.skipCounts = null;
  }
}
