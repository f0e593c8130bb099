// Per-token KL estimators between the policy and the frozen reference (Schulman, "Approximating
// KL divergence", 2020; verl: kl_penalty).
import { check } from '../../gpu/errors.js';
import { clamp, exp, mul, sub } from '../../tensor/ops.js';
import { Tensor } from '../../tensor/tensor.js';
import { checkTokens } from './aggregate.js';

/** A KL estimator of klPenalty: k1 (log-ratio), k2 (half its square) or k3 (GRPO's, >= 0). */
export type KlKind = 'k1' | 'k2' | 'k3';
/** Every KlKind (for validating configurations). */
export const KL_KINDS: readonly KlKind[] = ['k1', 'k2', 'k3'];

/** k3's log-ratio ref − logp is clamped to ±LOG_RATIO_CLAMP so that exp() cannot overflow. */
export const LOG_RATIO_CLAMP = 20;

/**
 * Per-token estimate of KL(π_θ ‖ π_ref) from the log-probs of the sampled tokens. logp and refLogp
 * are (B, T); so is the result (mask and aggregate it like a loss).
 *
 *   k1 = logp − ref                              unbiased, often negative       ∂/∂logp = 1
 *   k2 = ½ (logp − ref)²                         biased, ≥ 0                     ∂/∂logp = logp − ref
 *   k3 = exp(ref − logp) − (ref − logp) − 1      unbiased, ≥ 0 (GRPO's choice)  ∂/∂logp = 1 − exp(ref − logp)
 *
 * In k3, ref − logp is first clamped to ±20 (the gradient is 0 past the clamp). refLogp carries no
 * gradient: the reference model is frozen.
 */
export function klPenalty(logp: Tensor, refLogp: Tensor, kind: KlKind): Tensor {
  checkTokens('klPenalty', { logp, refLogp });
  check(KL_KINDS.includes(kind), 'klPenalty', () => `kind must be one of ${KL_KINDS.join(', ')}, got ${String(kind)}`);
  if (kind === 'k1') return sub(logp, refLogp);
  if (kind === 'k2') {
    const d = sub(logp, refLogp);
    return mul(mul(d, d), 0.5);
  }
  const x = clamp(sub(refLogp, logp), -LOG_RATIO_CLAMP, LOG_RATIO_CLAMP);
  return sub(sub(exp(x), x), 1);
}
