// Optimizers. AdamW runs as one fused in-place kernel per parameter; global-norm clipping computes
// its coefficient on the GPU, so a training step needs no readback.
//
// Non-finite steps never reach the weights. Each update first computes on the GPU a 0/1 `skipped`
// flag: 1 when the global gradient norm (or the loss passed to update()) is NaN or ±Inf, tested on
// the bits (exponent all ones), so no compiler assumption about NaN can fold the test away. The
// kernel reads the flag and then leaves the parameters and both moments bit for bit as they were.
//
// Step counts. `step` (host) counts update attempts, skipped ones included: the learning-rate
// schedule, the Trainer's per-step seeds and checkpoints index steps by it, and nothing on the host
// can know which steps were skipped without a readback. The bias corrections 1 - beta^n count the
// updates actually applied: they live on the GPU (`biasCorrection`) and advance only when the flag
// is 0, so moments and corrections stay consistent across a skipped step (as with PyTorch's
// GradScaler, which skips optimizer.step() and so Adam's own count).
import { runAdamW } from '../kernels/adamw.js';
import { noGrad } from '../tensor/autograd.js';
import { check } from '../gpu/errors.js';
import { keep, tidy } from '../tensor/memory.js';
import { assign, fmap, reshape, sum, sumOfSquares, zeros, zerosLike } from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';

/** AdamW's hyperparameters (validated by the constructor: out-of-range values are TrimpiErrors). */
export interface AdamWOptions {
  /** Learning rate, finite and >= 0 (default 1e-3). */
  lr?: number;
  /** Moment decay rates, two numbers in [0, 1) (default [0.9, 0.999]). */
  betas?: [number, number];
  /** Added to the denominator, finite and > 0 (default 1e-8). */
  eps?: number;
  /** Decoupled weight decay (applied to parameters in decayed groups only), finite and >= 0 (default 0.01). */
  weightDecay?: number;
  /** Clip the global gradient norm to this value (0 or undefined: no clipping), finite and >= 0. */
  maxGradNorm?: number;
}

/** A group of parameters sharing options (e.g. no weight decay on norms, biases and embeddings). */
export interface ParamGroup {
  params: Tensor[];
  weightDecay?: number;
}

/** ||g||_2 over all gradients as a 1-element GPU tensor (no readback). Missing gradients count as 0. */
export function globalGradNorm(params: readonly Tensor[]): Tensor {
  return noGrad(() => tidy(() => {
    const grads = params.flatMap((p) => (p.grad ? [p.grad] : []));
    return grads.length ? fmap('sqrt(a)', sumOfSquares(grads)) : fmap('0.0 * a', sum(params[0]));
  }));
}

/** WGSL: whether the f32 `x` is finite, from its bits (an exponent of all ones is Inf or NaN). */
const finite = (x: string): string => `((bitcast<u32>(${x}) & 0x7f800000u) != 0x7f800000u)`;

/**
 * 1 where `x` is NaN or ±Inf, else 0 (f32, x's shape), computed on the GPU from the bits. With `y`
 * (broadcast against x): 1 where either is non-finite.
 */
export function nonFiniteFlag(x: Tensor, y?: Tensor): Tensor {
  return noGrad(() => (y ? fmap(`select(1.0, 0.0, ${finite('a')} && ${finite('b')})`, x, y) : fmap(`select(1.0, 0.0, ${finite('a')})`, x)));
}

/** The result of AdamW.update: both 1-element GPU tensors owned by the caller (or its tidy). */
export interface UpdateResult {
  /** Global gradient norm before clipping. */
  gradNorm: Tensor;
  /** 1 when the update was skipped (non-finite loss or gradient norm: nothing changed), else 0. */
  skipped: Tensor;
}

/** Throws a TrimpiError unless `x` is a finite number satisfying `ok`. */
function checkNumber(op: string, name: string, x: unknown, ok: (x: number) => boolean, want: string): void {
  check(typeof x === 'number' && Number.isFinite(x) && ok(x), op, () => `${name} must be ${want}, got ${Array.isArray(x) ? `[${x.join(', ')}]` : String(x)}`);
}

/**
 * AdamW with decoupled weight decay, parameter groups, global-norm clipping and non-finite-step
 * skipping, all on the GPU (see the file comment for the step counts).
 */
export class AdamW {
  /** The parameter groups, each with its weight decay. */
  readonly groups: { params: Tensor[]; weightDecay: number }[];
  /** Learning rate of the next update (the Trainer sets it every step from its schedule). */
  lr: number;
  /** Moment decay rates (beta1, beta2). */
  readonly betas: [number, number];
  /** Added to the denominator. */
  readonly eps: number;
  /** Global gradient-norm clipping threshold (0: off). */
  readonly maxGradNorm: number;
  /** Update attempts so far (skipped steps included); restored by loadCheckpoint. */
  step = 0;
  private readonly state = new Map<Tensor, { m: Tensor; v: Tensor }>();
  private bc: Tensor | null = null;

  constructor(params: Tensor[] | ParamGroup[], opts: AdamWOptions = {}) {
    const op = 'AdamW';
    const wd = opts.weightDecay ?? 0.01;
    const groups = params.length > 0 && 'params' in (params[0] as object) ? (params as ParamGroup[]) : [{ params: params as Tensor[] }];
    this.groups = groups.map((g) => ({ params: [...g.params], weightDecay: g.weightDecay ?? wd }));
    this.lr = opts.lr ?? 1e-3;
    this.betas = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.maxGradNorm = opts.maxGradNorm ?? 0;
    checkNumber(op, 'lr', this.lr, (x) => x >= 0, 'a finite number >= 0');
    check(Array.isArray(this.betas) && this.betas.length === 2 && this.betas.every((b) => typeof b === 'number' && b >= 0 && b < 1), op,
      () => `betas must be two numbers in [0, 1), got ${JSON.stringify(this.betas)}`);
    this.betas = [this.betas[0], this.betas[1]];
    checkNumber(op, 'eps', this.eps, (x) => x > 0, 'a finite number > 0');
    checkNumber(op, 'maxGradNorm', this.maxGradNorm, (x) => x >= 0, 'a finite number >= 0 (0: no clipping)');
    for (const g of this.groups) checkNumber(op, 'weightDecay', g.weightDecay, (x) => x >= 0, 'a finite number >= 0');
    for (const g of this.groups) for (const p of g.params) {
      check(p.requiresGrad && p.dtype === 'f32' && p.isContiguous && p.offset === 0, op, () => `parameter ${p.describe()} must be a contiguous f32 tensor with requiresGrad`);
    }
  }

  /** Every parameter, in group order. */
  get params(): Tensor[] {
    return this.groups.flatMap((g) => g.params);
  }

  /** Optimizer state (first and second moments) of a parameter, created on first use. */
  moments(p: Tensor): { m: Tensor; v: Tensor } {
    let s = this.state.get(p);
    if (!s) {
      s = { m: keep(zerosLike(p)), v: keep(zerosLike(p)) };
      this.state.set(p, s);
    }
    return s;
  }

  /**
   * The bias corrections [1 - beta1^n, 1 - beta2^n] (f32, shape [2], on the GPU) for the n updates
   * applied so far (skipped steps do not count); [0, 0] before the first. Checkpoints save it;
   * assign() to it to restore a state.
   */
  get biasCorrection(): Tensor {
    if (!this.bc) this.bc = keep(zeros([2], { device: this.params[0]?.device }));
    return this.bc;
  }

  /**
   * One update of every parameter that has a gradient, skipped on the GPU (parameters and moments
   * untouched, bias corrections not advanced) when the global gradient norm or `loss` is NaN or
   * ±Inf. Returns the norm before clipping and the 0/1 skipped flag as 1-element tensors: read them
   * when convenient, nothing here waits for the GPU. `step` advances either way.
   */
  update(opts: { loss?: Tensor } = {}): UpdateResult {
    this.step++;
    const params = this.params;
    const [b1, b2] = this.betas;
    const bc = this.biasCorrection;
    return noGrad(() => {
      const gradNorm = globalGradNorm(params);
      const loss = opts.loss;
      const skipped = tidy(() => (loss ? nonFiniteFlag(gradNorm, reshape(loss, gradNorm.shape)) : nonFiniteFlag(gradNorm)));
      tidy(() => {
        // bc <- (1 - b) + b * bc, the running 1 - b^n, unless skipped (b = beta1 for element 0, beta2 for 1)
        const beta = 'select(p.y, p.x, o0 == 0u)';
        assign(bc, fmap(`select((1.0 - ${beta}) + ${beta} * a, a, b != 0.0)`, bc, skipped, { scalars: [b1, b2] }));
        const clip = this.maxGradNorm > 0 ? fmap('min(1.0, p.x / (a + 1e-6))', gradNorm, { scalars: [this.maxGradNorm] }) : fmap('1.0 + 0.0 * a', gradNorm);
        for (const g of this.groups) {
          for (const p of g.params) {
            if (!p.grad) continue;
            const { m, v } = this.moments(p);
            const grad = p.grad.isContiguous && p.grad.offset === 0 ? p.grad : p.grad.contiguous();
            runAdamW(p.device, 'AdamW', p, m, v, grad, { clip, skip: skipped, biasCorrection: bc }, {
              lr: this.lr, beta1: b1, beta2: b2, eps: this.eps, weightDecay: g.weightDecay,
            });
            // in-place writes: a graph that saved p (or reads it in a later backward) must see them
            p.bumpVersion();
            m.bumpVersion();
            v.bumpVersion();
          }
        }
      });
      return { gradNorm, skipped };
    });
  }

  /**
   * update() without a loss, returning only the global gradient norm before clipping (a 1-element
   * tensor). A non-finite norm still skips the update.
   */
  stepUpdate(): Tensor {
    const { gradNorm, skipped } = this.update();
    skipped.dispose();
    return gradNorm;
  }

  /** Drops every parameter's gradient. */
  zeroGrad(): void {
    for (const p of this.params) p.zeroGrad();
  }

  /** Frees the moments and the bias corrections (the parameters are the model's). */
  dispose(): void {
    for (const s of this.state.values()) {
      s.m.dispose();
      s.v.dispose();
    }
    this.state.clear();
    this.bc?.dispose();
    this.bc = null;
  }
}
