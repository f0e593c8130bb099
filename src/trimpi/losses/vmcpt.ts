// VM-CPT: visual-masked continual pre-training, the first stage of TriMPI (paper section 3, Eq. 2).
import { noGrad } from '../../tensor/autograd.js';
import { neg, sum } from '../../tensor/ops.js';
import { Tensor } from '../../tensor/tensor.js';
import { LossOutput, aggregateLoss, checkMaskLike, maskedMean } from './aggregate.js';
import { nextTokenLogProbs, targetMask } from './logprobs.js';
import { checkTensor } from '../../tensor/validate.js';

/** The metrics of vmcptLoss (scalar tensors cut from the graph). */
export interface VmcptMetrics {
  /** Token mean of −log p over the text tokens (weighs tokens, not sequences, unlike the loss). */
  nll: Tensor;
  /** Number of tokens in the loss. */
  tokens: Tensor;
}

/**
 * Next-token loss on x = (P_T, P_I, I, Q, C, A): policy text, policy images, input images, query,
 * CoT and answer, with every visual token masked out. Paper Eq. 2:
 *
 *   L = −E_x [ (1 / Σ_t m_t) Σ_t m_t log p(x_t | x_<t) ],   m_t = 1[x_t ∉ P_I ∪ I]
 *
 * i.e. a per-sequence mean over the unmasked tokens, then the batch mean ('seq-mean-token-mean').
 *
 * logits (B, T, V): the model on tokens; tokens (B, T) i32; textMask (B, T) f32: m_t, 1 on text
 * tokens, 0 on visual tokens and padding (see textTokenMask). Token 0 has no prediction, so
 * textMask[:, 0] is not used.
 */
export function vmcptLoss(logits: Tensor, tokens: Tensor, textMask: Tensor): LossOutput<VmcptMetrics> {
  checkTensor('vmcptLoss', 'logits', logits);
  checkTensor('vmcptLoss', 'tokens', tokens);
  checkTensor('vmcptLoss', 'textMask', textMask);
  checkMaskLike('vmcptLoss', 'textMask', textMask, tokens);
  const logp = nextTokenLogProbs(logits, tokens);
  const m = targetMask(textMask);
  const nll = neg(logp);
  const loss = aggregateLoss(nll, m, 'seq-mean-token-mean');
  const metrics = noGrad(() => ({ nll: maskedMean(nll, m), tokens: sum(m) }));
  return { loss, metrics };
}

/**
 * Host-side m_t for VM-CPT: 1 on text tokens, 0 on visual tokens (the `<image>` placeholders where
 * patch embeddings of P_I and I enter) and on padding. tokens: (B, T) ids, as nested arrays.
 */
export function textTokenMask(tokens: readonly (readonly number[])[], visualIds: readonly number[], padId?: number): number[][] {
  const off = new Set(visualIds);
  if (padId !== undefined) off.add(padId);
  return tokens.map((row) => row.map((id) => (off.has(id) ? 0 : 1)));
}
