// Optimizers. AdamW runs as one fused in-place kernel per parameter; global-norm clipping computes
// its coefficient on the GPU, so a training step needs no readback.
import { runAdamW } from '../kernels/adamw.js';
import { noGrad } from '../tensor/autograd.js';
import { check } from '../tensor/errors.js';
import { keep, tidy } from '../tensor/memory.js';
import { fmap, sum, sumOfSquares, zerosLike } from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';

export interface AdamWOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  /** Decoupled weight decay (applied to parameters in decayed groups only). */
  weightDecay?: number;
  /** Clip the global gradient norm to this value (0 or undefined: no clipping). */
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

export class AdamW {
  readonly groups: { params: Tensor[]; weightDecay: number }[];
  lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly maxGradNorm: number;
  step = 0;
  private readonly state = new Map<Tensor, { m: Tensor; v: Tensor }>();

  constructor(params: Tensor[] | ParamGroup[], opts: AdamWOptions = {}) {
    const wd = opts.weightDecay ?? 0.01;
    const groups = params.length > 0 && 'params' in (params[0] as object) ? (params as ParamGroup[]) : [{ params: params as Tensor[] }];
    this.groups = groups.map((g) => ({ params: [...g.params], weightDecay: g.weightDecay ?? wd }));
    this.lr = opts.lr ?? 1e-3;
    this.betas = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.maxGradNorm = opts.maxGradNorm ?? 0;
    for (const g of this.groups) for (const p of g.params) {
      check(p.requiresGrad && p.dtype === 'f32' && p.isContiguous && p.offset === 0, 'AdamW', () => `parameter ${p.describe()} must be a contiguous f32 tensor with requiresGrad`);
    }
    check(this.lr >= 0 && this.eps > 0 && this.betas.every((b) => b >= 0 && b < 1), 'AdamW', () => `invalid options lr ${this.lr}, betas ${this.betas}, eps ${this.eps}`);
  }

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
   * One update of every parameter that has a gradient. Returns the global gradient norm before
   * clipping as a 1-element tensor (read it when convenient; nothing here waits for the GPU).
   */
  stepUpdate(): Tensor {
    this.step++;
    const params = this.params;
    return noGrad(() => {
      const norm = globalGradNorm(params);
      tidy(() => {
        const clip = this.maxGradNorm > 0 ? fmap('min(1.0, p.x / (a + 1e-6))', norm, { scalars: [this.maxGradNorm] }) : fmap('1.0 + 0.0 * a', norm);
        for (const g of this.groups) {
          for (const p of g.params) {
            if (!p.grad) continue;
            const { m, v } = this.moments(p);
            const grad = p.grad.isContiguous && p.grad.offset === 0 ? p.grad : p.grad.contiguous();
            runAdamW(p.device, 'AdamW', p, m, v, grad, clip, {
              lr: this.lr, beta1: this.betas[0], beta2: this.betas[1], eps: this.eps, weightDecay: g.weightDecay, step: this.step,
            });
          }
        }
      });
      return norm;
    });
  }

  zeroGrad(): void {
    for (const p of this.params) p.zeroGrad();
  }

  dispose(): void {
    for (const s of this.state.values()) {
      s.m.dispose();
      s.v.dispose();
    }
    this.state.clear();
  }
}
