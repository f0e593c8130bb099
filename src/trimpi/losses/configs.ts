// The RL algorithms of the paper as named configurations (section 1 of ../shared/docs/trimpi.md).
import type { AdvantageOptions } from './advantages.js';
import type { PolicyLossConfig } from './policy.js';
import type { RewardOptions } from './rewards.js';

/** A named RL algorithm: its policy-loss, advantage and reward settings, and dynamic sampling (GRPO, DAPO). */
export interface RlAlgorithm {
  readonly name: string;
  readonly loss: Readonly<PolicyLossConfig>;
  readonly advantage: Readonly<AdvantageOptions>;
  readonly reward: Readonly<RewardOptions>;
  /** DAPO's dynamic sampling (drop groups with equal rewards, refill); null: off. */
  readonly dynamicSampling: { readonly maxRetries: number } | null;
}

/** GRPO as the paper runs it: clip 0.2 / 0.3, k3 KL to the frozen reference with β = 0.01, token mean. */
export const GRPO: RlAlgorithm = deepFreeze({
  name: 'GRPO',
  loss: { clipLow: 0.2, clipHigh: 0.3, kl: { coef: 0.01, kind: 'k3' }, lossAgg: 'token-mean' },
  advantage: { eps: 1e-6, normalizeByStd: true },
  reward: { formatWeight: 0.1 },
  dynamicSampling: null,
});

/** DAPO: clip-higher 0.2 / 0.28, no KL, token mean, dynamic sampling with at most 20 retries. */
export const DAPO: RlAlgorithm = deepFreeze({
  name: 'DAPO',
  loss: { clipLow: 0.2, clipHigh: 0.28, kl: null, lossAgg: 'token-mean' },
  advantage: { eps: 1e-6, normalizeByStd: true },
  reward: { formatWeight: 0.1 },
  dynamicSampling: { maxRetries: 20 },
});

function deepFreeze<T extends object>(o: T): T {
  for (const v of Object.values(o)) if (v && typeof v === 'object') deepFreeze(v as object);
  return Object.freeze(o);
}
