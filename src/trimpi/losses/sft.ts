// SFT, direct and CoT: the second stage of TriMPI, and the direct-SFT baseline.
import { noGrad } from '../../tensor/autograd.js';
import { neg, sum } from '../../tensor/ops.js';
import { Tensor } from '../../tensor/tensor.js';
import { LossOutput, aggregateLoss, checkMaskLike } from './aggregate.js';
import { nextTokenLogProbs, targetMask } from './logprobs.js';
import { checkTensor } from '../../tensor/validate.js';

/** The metrics of sftLoss (scalar tensors cut from the graph). */
export interface SftMetrics {
  /** Number of response tokens in the loss. */
  tokens: Tensor;
}

/**
 * Supervised fine-tuning on the response only, given (Q, I) and no policy:
 *
 *   L = −(1 / Σ_bt m_bt) Σ_bt m_bt log p(o_bt | Q, I, o_b,<t)     token mean
 *
 * CoT SFT trains on O = [C; A] (`<think> … </think> \boxed{…}`), direct SFT on the answer A alone:
 * the same loss, different data.
 *
 * logits (B, T, V): the model on tokens = (Q, I, O, padding); tokens (B, T) i32; responseMask (B, T)
 * f32: 1 on response tokens, 0 on the prompt and padding.
 */
export function sftLoss(logits: Tensor, tokens: Tensor, responseMask: Tensor): LossOutput<SftMetrics> {
  checkTensor('sftLoss', 'logits', logits);
  checkTensor('sftLoss', 'tokens', tokens);
  checkTensor('sftLoss', 'responseMask', responseMask);
  checkMaskLike('sftLoss', 'responseMask', responseMask, tokens);
  const logp = nextTokenLogProbs(logits, tokens);
  const m = targetMask(responseMask);
  const loss = aggregateLoss(neg(logp), m, 'token-mean');
  return { loss, metrics: noGrad(() => ({ tokens: sum(m) })) };
}
