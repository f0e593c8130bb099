// DAPO's dynamic sampling: keep only prompts whose responses disagree in reward, refilling the
// batch from fresh generations up to a retry limit (verl: the filter_groups loop of the DAPO trainer).
import { check } from '../../gpu/errors.js';

/** A group has a learning signal iff its rewards are not all equal (else every Â is 0). A singleton has none. */
export function hasRewardVariance(rewards: readonly number[]): boolean {
  return rewards.some((r) => r !== rewards[0]);
}

/** Options of dynamicSampling, over groups of type G. */
export interface DynamicSamplingOptions<G> {
  /** Groups wanted in the training batch. */
  target: number;
  /** Refill batches allowed after the first one (DAPO: 20). */
  maxRetries: number;
  /** The rewards of one group (for PoRo: all 2G of the pooled group). */
  rewardsOf: (group: G) => readonly number[];
}

/** What dynamicSampling returns: the kept groups and counts of what was sampled and dropped. */
export interface DynamicSamplingResult<G> {
  /** The kept groups in sampling order: `target` of them, or fewer when the limit was reached. */
  groups: G[];
  /** target was reached. */
  complete: boolean;
  /** Generation batches sampled: 1 + the retries used. */
  batches: number;
  /** Groups sampled in all, dropped for equal rewards, and informative ones left over beyond target. */
  sampled: number;
  dropped: number;
  surplus: number;
  /** One line saying what happened, for the log. */
  message: string;
}

/**
 * Calls sampleBatch(0), sampleBatch(1), … (each returns freshly sampled, rewarded groups), drops the
 * groups whose rewards are all equal, and stops once `target` groups are kept or after 1 + maxRetries
 * batches. On reaching the limit it returns what it has with complete: false and says so in message;
 * the caller decides whether to train on the smaller batch (verl raises an error instead).
 */
export async function dynamicSampling<G>(
  sampleBatch: (batch: number) => readonly G[] | Promise<readonly G[]>,
  opts: DynamicSamplingOptions<G>,
): Promise<DynamicSamplingResult<G>> {
  const { target, maxRetries, rewardsOf } = opts;
  check(Number.isInteger(target) && target > 0 && Number.isInteger(maxRetries) && maxRetries >= 0, 'dynamicSampling',
    () => `needs an integer target > 0 and maxRetries >= 0, got target ${target}, maxRetries ${maxRetries}`);
  const kept: G[] = [];
  let batches = 0;
  let sampled = 0;
  while (kept.length < target && batches <= maxRetries) {
    const batch = await sampleBatch(batches++);
    sampled += batch.length;
    kept.push(...batch.filter((g) => hasRewardVariance(rewardsOf(g))));
  }
  const informative = kept.length;
  const groups = kept.slice(0, target);
  const complete = groups.length === target;
  const dropped = sampled - informative;
  const after = `after ${batches} batch${batches === 1 ? '' : 'es'}`;
  const counts = `${sampled} sampled, ${dropped} dropped for equal rewards`;
  const message = complete
    ? `dynamic sampling: kept ${target} groups ${after}; ${counts}, ${informative - target} left over`
    : `dynamic sampling: retry limit reached ${after} (maxRetries ${maxRetries}): kept ${groups.length} of ${target} groups; ${counts}`;
  return { groups, complete, batches, sampled, dropped, surplus: informative - groups.length, message };
}
