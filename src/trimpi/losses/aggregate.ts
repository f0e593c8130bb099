// What every loss returns, how a per-token loss becomes a scalar (verl's agg_loss), and the shape
// checks the losses share.
import { check, fmtShape } from '../../gpu/errors.js';
import { div, gt, maximum, sum, where } from '../../tensor/ops.js';
import { Tensor } from '../../tensor/tensor.js';

/**
 * A loss and its metrics. `loss` is the scalar to call backward() on; every metric is a scalar tensor
 * cut from the graph, read when wanted (`await metrics.clipFracLow.item()`): a loss never reads back.
 */
export interface LossOutput<M> {
  loss: Tensor;
  metrics: M;
}

/** How a per-token loss ℓ (B, T) is reduced over the tokens where the mask m (B, T) is 1. */
export type LossAgg = 'token-mean' | 'seq-mean-token-mean' | 'seq-mean-token-sum';
/** Every LossAgg mode (for validating configurations). */
export const LOSS_AGGS: readonly LossAgg[] = ['token-mean', 'seq-mean-token-mean', 'seq-mean-token-sum'];

/**
 * Reduces a per-token loss to a scalar (verl: agg_loss):
 *
 *   token-mean            Σ_bt m·ℓ / Σ_bt m               every token weighs the same (DAPO, TriMPI's RL)
 *   seq-mean-token-mean   (1/B') Σ_b Σ_t m·ℓ / Σ_t m      every sequence weighs the same (VM-CPT, Eq. 2)
 *   seq-mean-token-sum    (1/B') Σ_b Σ_t m·ℓ              longer sequences weigh more
 *
 * lossMat and mask are (B, T). B' counts the sequences with at least one unmasked token (a sequence
 * without any would otherwise be a 0/0); an all-masked batch gives 0. Masked positions are replaced
 * with `where`, so even an inf or NaN there contributes exactly nothing, and gets a zero gradient
 * (keeping garbage out of the ops *before* lossMat is the caller's job: see policyLoss).
 */
export function aggregateLoss(lossMat: Tensor, mask: Tensor, mode: LossAgg = 'token-mean'): Tensor {
  checkTokens('aggregateLoss', { lossMat, mask });
  check(LOSS_AGGS.includes(mode), 'aggregateLoss', () => `mode must be one of ${LOSS_AGGS.join(', ')}, got ${String(mode)}`);
  const l = where(mask, lossMat, 0);
  if (mode === 'token-mean') return div(sum(l), maximum(sum(mask), 1));
  const perSeq = mode === 'seq-mean-token-mean' ? div(sum(l, 1), maximum(sum(mask, 1), 1)) : sum(l, 1);
  const nonEmptySeqs = maximum(sum(gt(sum(mask, 1), 0)), 1);
  return div(sum(perSeq), nonEmptySeqs);
}

/**
 * A step's batch split into n micro-batches (to bound memory) must still be aggregated as one batch.
 * The Trainer averages the n micro-batch losses, so micro-batch i's aggregate gets the factor
 *
 *   token-mean                  n · (tokens in i) / (tokens in the batch)
 *   seq-mean-token-mean / -sum  n · (sequences in i) / (sequences in the batch)   (those with a token)
 *
 * and (1/n) Σ_i scale_i · agg_i equals the aggregate of the whole batch, however it was split.
 * counts[i] holds micro-batch i's tokens per sequence (e.g. TargetBatch.counts). All-empty: zeros.
 */
export function microBatchScales(mode: LossAgg, counts: readonly (readonly number[])[]): number[] {
  check(LOSS_AGGS.includes(mode), 'microBatchScales', () => `mode must be one of ${LOSS_AGGS.join(', ')}, got ${String(mode)}`);
  const size = (c: readonly number[]): number => (mode === 'token-mean' ? c.reduce((a, b) => a + b, 0) : c.filter((k) => k > 0).length);
  const total = counts.reduce((a, c) => a + size(c), 0);
  return counts.map((c) => (total > 0 ? (counts.length * size(c)) / total : 0));
}

/** Σ m·x / Σ m over all positions (0 when the mask is empty): the token mean used by every metric. */
export function maskedMean(x: Tensor, mask: Tensor): Tensor {
  return aggregateLoss(x, mask, 'token-mean');
}

/**
 * Checks that every named tensor is f32 with the shape of the first one, which must be (B, T).
 * Errors name the function, the argument, its shape and the expected shape.
 */
export function checkTokens(op: string, tensors: Record<string, Tensor | undefined>): readonly number[] {
  const entries = Object.entries(tensors).filter((e): e is [string, Tensor] => e[1] !== undefined);
  const [firstName, first] = entries[0];
  check(first instanceof Tensor && first.ndim === 2, op, () => `${firstName} must be a (B, T) tensor, got ${describe(first)}`);
  const shape = first.shape;
  for (const [name, x] of entries) {
    check(x instanceof Tensor && x.dtype === 'f32' && x.ndim === 2 && x.shape[0] === shape[0] && x.shape[1] === shape[1], op,
      () => `${name} must be an f32 tensor of shape ${fmtShape(shape)} (the shape of ${firstName}), got ${describe(x)}`);
  }
  return shape;
}

/** Checks that mask is an f32 tensor with the shape of `like` (e.g. the token ids it marks). */
export function checkMaskLike(op: string, name: string, mask: Tensor, like: Tensor): void {
  check(mask instanceof Tensor && mask.dtype === 'f32' && mask.ndim === like.ndim && mask.shape.every((d, i) => d === like.shape[i]), op,
    () => `${name} must be an f32 0/1 tensor of shape ${fmtShape(like.shape)} (the shape of ${like.describe()}), got ${describe(mask)}`);
}

function describe(x: unknown): string {
  return x instanceof Tensor ? x.describe() : String(x);
}
