// The TriMPI losses, one concept per file: VM-CPT, SFT, and the RL pieces (advantages, KL,
// clipped objective, GRPO/DAPO configurations, dynamic sampling, PolicyRollout, rewards), and stage
// 0's patch-attribute loss.
// Walk-through with worked numbers: docs/losses.md.
export { aggregateLoss, maskedMean, microBatchScales, LOSS_AGGS } from './aggregate.js';
export type { LossAgg, LossOutput } from './aggregate.js';
export { nextTokenLogProbs, targetMask } from './logprobs.js';
export { vmcptLoss, textTokenMask } from './vmcpt.js';
export type { VmcptMetrics } from './vmcpt.js';
export { sftLoss } from './sft.js';
export type { SftMetrics } from './sft.js';
export { groupAdvantages } from './advantages.js';
export type { AdvantageOptions } from './advantages.js';
export { klPenalty, KL_KINDS, LOG_RATIO_CLAMP } from './kl.js';
export type { KlKind } from './kl.js';
export { policyLoss } from './policy.js';
export type { PolicyLossConfig, PolicyLossInputs, PolicyLossMetrics } from './policy.js';
export { GRPO, DAPO } from './configs.js';
export type { RlAlgorithm } from './configs.js';
export { dynamicSampling, hasRewardVariance } from './dynamic_sampling.js';
export type { DynamicSamplingOptions, DynamicSamplingResult } from './dynamic_sampling.js';
export { buildPolicyRolloutBatch } from './policy_rollout.js';
export type { PoRoGroup, RolloutBatch, SampledResponse } from './policy_rollout.js';
export { computeReward, accuracyReward, formatReward, lastBoxed, normalizeAnswer } from './rewards.js';
export type { Reward, RewardOptions } from './rewards.js';
export { patchAttributeLoss, patchAttributeTargets, patchOwners } from './patch_attributes.js';
export type { PatchAttributeMetrics, PatchTargets } from './patch_attributes.js';
