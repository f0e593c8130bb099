// GRPO's group-relative advantage (verl: compute_grpo_outcome_advantage), on the host: rewards are
// numbers computed from decoded text, one per response.
import { check } from '../../gpu/errors.js';

/** Options of groupAdvantages. */
export interface AdvantageOptions {
  /** ε in (R − mean) / (std + ε); default 1e-6. */
  eps?: number;
  /** false: Dr.GRPO's Â = R − mean, without dividing by the std; default true. */
  normalizeByStd?: boolean;
}

/**
 * For each group of responses to one prompt:
 *
 *   Â_i = (R_i − mean(R)) / (std(R) + ε)          std with Bessel's correction (n − 1), as verl's torch.std
 *   Â_i =  R_i − mean(R)                          with normalizeByStd: false (Dr.GRPO)
 *
 * A group of one response, or whose rewards are all equal, carries no signal: its advantages are
 * exactly 0 (std would be undefined, or rounding would leave ±1e-11 / ε). verl instead gives a
 * singleton Â = R.
 *
 * groups: the rewards, one array per group (sizes may differ). Returns the advantages in that layout.
 */
export function groupAdvantages(groups: readonly (readonly number[])[], opts: AdvantageOptions = {}): number[][] {
  const eps = opts.eps ?? 1e-6;
  const byStd = opts.normalizeByStd ?? true;
  check(eps >= 0, 'groupAdvantages', () => `eps must be >= 0, got ${eps}`);
  return groups.map((rewards, g) => {
    check(rewards.length > 0 && rewards.every(Number.isFinite), 'groupAdvantages',
      () => `group ${g} must hold one or more finite rewards, got [${rewards.join(', ')}]`);
    const n = rewards.length;
    if (n === 1 || rewards.every((r) => r === rewards[0])) return rewards.map(() => 0);
    const mean = rewards.reduce((a, r) => a + r, 0) / n;
    const std = Math.sqrt(rewards.reduce((a, r) => a + (r - mean) ** 2, 0) / (n - 1));
    return rewards.map((r) => (byStd ? (r - mean) / (std + eps) : r - mean));
  });
}
