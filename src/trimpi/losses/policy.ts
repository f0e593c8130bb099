// The clipped policy-gradient objective of GRPO and DAPO, with an optional KL penalty to the
// reference model (verl: compute_policy_loss + kl_penalty + agg_loss).
import { noGrad } from '../../tensor/autograd.js';
import { check } from '../../gpu/errors.js';
import { add, clamp, exp, gt, lt, maximum, minimum, mul, neg, reshape, sub, where } from '../../tensor/ops.js';
import { Tensor } from '../../tensor/tensor.js';
import { LossAgg, LOSS_AGGS, LossOutput, aggregateLoss, checkTokens, maskedMean } from './aggregate.js';
import { KlKind, KL_KINDS, LOG_RATIO_CLAMP, klPenalty } from './kl.js';

/** Hyper-parameters of policyLoss: the clip range, optional dual clip, KL penalty and aggregation (see GRPO, DAPO). */
export interface PolicyLossConfig {
  /** ε_low: the ratio is clipped below at 1 − ε_low. */
  clipLow: number;
  /** ε_high: the ratio is clipped above at 1 + ε_high (DAPO's "clip-higher": ε_high > ε_low). */
  clipHigh: number;
  /** Dual-clip constant c > 1 (Ye et al. 2020): for Â < 0 the per-token loss is capped at −c·Â. Off when absent. */
  dualClip?: number;
  /** β and the estimator of the KL penalty to the frozen reference; null: no KL (DAPO). */
  kl: { coef: number; kind: KlKind } | null;
  lossAgg: LossAgg;
}

/** The inputs of policyLoss: f32 per-token tensors of shape (B, T); the advantages may also be (B) or (B, 1). */
export interface PolicyLossInputs {
  /** log π_θ(o_t | q, o_<t) of the sampled tokens, (B, T): the tensor the gradient flows to. */
  logp: Tensor;
  /** log π_old of the same tokens, (B, T): the policy that sampled them (for PoRo: scored under the no-policy prompt). */
  oldLogp: Tensor;
  /** Â: (B) one per sequence (GRPO), or (B, T) one per token. */
  advantages: Tensor;
  /** (B, T): 1 on response tokens, 0 on padding. Masked positions may hold anything, NaN included. */
  mask: Tensor;
  /** log π_ref, (B, T): needed when config.kl is set. */
  refLogp?: Tensor;
  /** Per-token entropy of π_θ, (B, T): reported, not optimized. */
  entropy?: Tensor;
}

/** The metrics of policyLoss: scalar tensors cut from the graph (fractions and means are token means over the mask). */
export interface PolicyLossMetrics {
  /** The clipped surrogate alone, aggregated like the loss. */
  pgLoss: Tensor;
  /** The KL estimate to the reference, aggregated like the loss (unweighted by β); when config.kl. */
  kl?: Tensor;
  /** Share of tokens whose gradient the lower clip removes: Â < 0 and r < 1 − ε_low. */
  clipFracLow: Tensor;
  /** Share of tokens whose gradient the upper clip removes: Â > 0 and r > 1 + ε_high. */
  clipFracHigh: Tensor;
  /** Share of tokens capped by the dual clip: Â < 0 and r > c; when config.dualClip. */
  dualClipFrac?: Tensor;
  /** Token mean of old − logp: the k1 estimate of KL(π_old ‖ π_θ), how far this update has moved. */
  approxKl: Tensor;
  /** Token mean of the ratio r. */
  ratioMean: Tensor;
  /** Token mean of the given entropy. */
  entropy?: Tensor;
}

/**
 * The clipped policy objective (PPO's, as GRPO and DAPO use it), per token t of response i:
 *
 *   r = exp(logp − old)                                       log-ratio clamped to ±20
 *   ℓ = −min(r·Â, clip(r, 1 − ε_low, 1 + ε_high)·Â)  [+ β·KL(π_θ ‖ π_ref) per token]
 *   dual clip (Â < 0):  ℓ = min(ℓ, −c·Â)
 *   loss = aggregate(ℓ, mask, config.lossAgg)
 *
 * which, with token-mean aggregation, is −J of the paper's
 *   J = (1/2G) Σ_i [min(r_i Â_i, clip(r_i, 1 − ε_l, 1 + ε_h) Â_i) − β KL(π_θ ‖ π_ref)].
 * The gradient reaches logp only; oldLogp, refLogp and the advantages are constants.
 */
export function policyLoss(inputs: PolicyLossInputs, config: PolicyLossConfig): LossOutput<PolicyLossMetrics> {
  const op = 'policyLoss';
  check(typeof inputs === 'object' && inputs !== null && typeof config === 'object' && config !== null, op,
    () => 'policyLoss({ logp, oldLogp, advantages, mask, refLogp? }, config) needs an inputs object and a config (e.g. GRPO.loss)');
  const { mask } = inputs;
  const [B, T] = checkTokens(op, { logp: inputs.logp, oldLogp: inputs.oldLogp, mask, refLogp: inputs.refLogp, entropy: inputs.entropy });
  const A = inputs.advantages;
  check(A instanceof Tensor && A.dtype === 'f32' && A.shape[0] === B && (A.ndim === 1 || (A.ndim === 2 && (A.shape[1] === 1 || A.shape[1] === T))), op,
    () => `advantages must be an f32 tensor of shape [${B}] or [${B}, ${T}] (like logp), got ${A instanceof Tensor ? A.describe() : String(A)}`);
  checkConfig(config, inputs.refLogp !== undefined);

  // Padding may hold garbage: replace it before any exp, so no inf/NaN reaches values or gradients.
  const clean = (x: Tensor): Tensor => where(mask, x, 0);
  const logp = clean(inputs.logp);
  const old = clean(inputs.oldLogp);
  const adv = clean(A.ndim === 1 ? reshape(A, [B, 1]) : A);

  const ratio = exp(clamp(sub(logp, old), -LOG_RATIO_CLAMP, LOG_RATIO_CLAMP));
  const clipped = clamp(ratio, 1 - config.clipLow, 1 + config.clipHigh);
  const negAdv = neg(adv);
  let pg = maximum(mul(negAdv, ratio), mul(negAdv, clipped)); // −min(r·Â, clip(r)·Â)
  if (config.dualClip !== undefined) pg = where(lt(adv, 0), minimum(pg, mul(negAdv, config.dualClip)), pg);

  const pgLoss = aggregateLoss(pg, mask, config.lossAgg);
  let loss = pgLoss;
  let kl: Tensor | undefined;
  if (config.kl) {
    kl = aggregateLoss(klPenalty(logp, clean(inputs.refLogp!), config.kl.kind), mask, config.lossAgg);
    loss = add(pgLoss, mul(kl, config.kl.coef)); // aggregation is linear: the same as adding β·KL per token
  }

  const metrics = noGrad((): PolicyLossMetrics => {
    const m: PolicyLossMetrics = {
      pgLoss: pgLoss.detach(),
      clipFracLow: maskedMean(mul(lt(adv, 0), lt(ratio, 1 - config.clipLow)), mask),
      clipFracHigh: maskedMean(mul(gt(adv, 0), gt(ratio, 1 + config.clipHigh)), mask),
      approxKl: maskedMean(sub(old, logp), mask),
      ratioMean: maskedMean(ratio, mask),
    };
    if (kl) m.kl = kl.detach();
    if (config.dualClip !== undefined) m.dualClipFrac = maskedMean(mul(lt(adv, 0), gt(ratio, config.dualClip)), mask);
    if (inputs.entropy) m.entropy = maskedMean(inputs.entropy, mask);
    return m;
  });
  return { loss, metrics };
}

function checkConfig(c: PolicyLossConfig, haveRef: boolean): void {
  const op = 'policyLoss';
  check(c.clipLow >= 0 && c.clipLow < 1 && c.clipHigh >= 0, op, () => `needs 0 <= clipLow < 1 and clipHigh >= 0, got clipLow ${c.clipLow}, clipHigh ${c.clipHigh}`);
  check(c.dualClip === undefined || c.dualClip > 1, op, () => `dualClip must be > 1, got ${c.dualClip}`);
  check(LOSS_AGGS.includes(c.lossAgg), op, () => `lossAgg must be one of ${LOSS_AGGS.join(', ')}, got ${String(c.lossAgg)}`);
  if (c.kl) {
    check(c.kl.coef >= 0 && KL_KINDS.includes(c.kl.kind), op, () => `kl needs coef >= 0 and kind in ${KL_KINDS.join(', ')}, got ${JSON.stringify(c.kl)}`);
    check(haveRef, op, () => `config.kl is set (β = ${c.kl!.coef}, ${c.kl!.kind}) but no refLogp was given`);
  }
}
