// Next-token log-probabilities: the quantity every TriMPI loss is built from.
import { check } from '../../gpu/errors.js';
import { slice, tokenLogProbs } from '../../tensor/ops.js';
import { Tensor } from '../../tensor/tensor.js';

/**
 * logp[b, t] = log p(tokens[b, t+1] | tokens[b, ≤t]), read from the model's logits at position t.
 *
 * logits (B, T, V) f32: the model run on tokens; tokens (B, T) i32, every id in [0, V) (padding and
 * `<image>` placeholders included). Returns (B, T−1), aligned with targetMask(mask) = mask[:, 1:].
 * Uses the engine's fused tokenLogProbs (logits[token] − logsumexp(logits)).
 */
export function nextTokenLogProbs(logits: Tensor, tokens: Tensor): Tensor {
  const op = 'nextTokenLogProbs';
  check(logits instanceof Tensor && logits.ndim === 3 && logits.dtype === 'f32' && logits.shape[1] >= 2, op,
    () => `logits must be an f32 tensor (B, T, V) with T >= 2, got ${logits instanceof Tensor ? logits.describe() : String(logits)}`);
  const [B, T] = logits.shape;
  check(tokens instanceof Tensor && tokens.dtype === 'i32' && tokens.ndim === 2 && tokens.shape[0] === B && tokens.shape[1] === T, op,
    () => `tokens must be an i32 tensor (B, T) = [${B}, ${T}] matching logits ${logits.describe()}, got ${tokens instanceof Tensor ? tokens.describe() : String(tokens)}`);
  return tokenLogProbs(slice(logits, 1, 0, T - 1), slice(tokens, 1, 1, T));
}

/**
 * A mask over tokens (B, T) (1 = this token is a target of the loss) moved onto the next-token
 * positions (B, T−1) of nextTokenLogProbs: mask[:, 1:]. Token 0 is never predicted.
 */
export function targetMask(mask: Tensor): Tensor {
  check(mask instanceof Tensor && mask.ndim === 2 && mask.shape[1] >= 2, 'targetMask',
    () => `mask must be a (B, T) tensor with T >= 2, got ${mask instanceof Tensor ? mask.describe() : String(mask)}`);
  return slice(mask, 1, 1);
}
