// PolicyRollout (PoRo): pool the responses sampled without and with the policy in context into one
// group, and train on all of them as if sampled without the policy. Host-side, on token ids.
import { check } from '../../gpu/errors.js';
import { AdvantageOptions, groupAdvantages } from './advantages.js';

/** One sampled response: its token ids (without the prompt) and its scalar reward. */
export interface SampledResponse {
  /** Response token ids (ending with <eos> if the model emitted it). */
  tokens: readonly number[];
  reward: number;
}

/** One prompt's rollouts for PoRo: G responses each way. */
export interface PoRoGroup {
  /** (Q, I) token ids without the policy: the prompt every response is trained under. */
  prompt: readonly number[];
  /** G responses sampled from π_old(· | Q, I). */
  noPolicy: readonly SampledResponse[];
  /** G responses sampled from π_old(· | Q, I, P), the policy in context. */
  withPolicy: readonly SampledResponse[];
}

/** The training batch, B = Σ 2G rows; upload with t.tensor(batch.tokens, { dtype: 'i32' }) etc. */
export interface RolloutBatch {
  /** (B, T): no-policy prompt, then the response, right-padded with padId. */
  tokens: number[][];
  /** (B, T): 1 where tokens[b][t] is a response token (move to next-token positions with targetMask). */
  responseMask: number[][];
  /** (B): Â of each row, normalized over its pooled 2G group; broadcast over its tokens by policyLoss. */
  advantages: number[];
  /** (B): the index of the row's prompt (group). */
  group: number[];
  /** (B): the response was sampled with the policy in context (for metrics; the loss does not use it). */
  withPolicy: boolean[];
}

/**
 * Builds the PoRo training batch. For prompt (Q, I) with responses o_1..o_G ~ π_old(·|Q, I) and
 * o_G+1..o_2G ~ π_old(·|Q, I, P):
 *
 *   Â_i = (R_i − mean_2G) / (std_2G + ε)       one group of 2G (groupAdvantages)
 *   every row is (Q, I, o_i): the policy P appears in no row
 *
 * so the old and reference log-probs that the trainer computes from `tokens` are log π_old(o_i | Q, I)
 * and log π_ref(o_i | Q, I), and r_i = π_θ(o_i | Q, I) / π_old(o_i | Q, I), for the policy-in-context
 * responses too. (This is why SampledResponse has no log-probs: those recorded while sampling with P
 * in context would be the wrong π_old.) Rows are ordered by group, no-policy responses first.
 * With withPolicy: [] in every group this is plain GRPO's batch (groups of G).
 */
export function buildPolicyRolloutBatch(groups: readonly PoRoGroup[], opts: { padId: number; advantage?: AdvantageOptions }): RolloutBatch {
  const op = 'buildPolicyRolloutBatch';
  check(groups.length > 0, op, () => 'needs at least one group');
  groups.forEach((g, i) => check(g.prompt.length > 0 && g.noPolicy.length > 0 && [0, g.noPolicy.length].includes(g.withPolicy.length), op,
    () => `group ${i} needs a non-empty prompt, G >= 1 responses without the policy and G (or 0) with it; got prompt length ${g.prompt.length}, ${g.noPolicy.length} without and ${g.withPolicy.length} with the policy`));
  const pooled = groups.map((g) => [...g.noPolicy, ...g.withPolicy]);
  const advantages = groupAdvantages(pooled.map((rs) => rs.map((r) => r.reward)), opts.advantage);
  const rows = groups.flatMap((g, i) => pooled[i].map((r, j) => ({
    tokens: [...g.prompt, ...r.tokens], promptLength: g.prompt.length, advantage: advantages[i][j], group: i, withPolicy: j >= g.noPolicy.length,
  })));
  const T = Math.max(...rows.map((r) => r.tokens.length));
  return {
    tokens: rows.map((r) => [...r.tokens, ...new Array<number>(T - r.tokens.length).fill(opts.padId)]),
    responseMask: rows.map((r) => Array.from({ length: T }, (_, t) => (t >= r.promptLength && t < r.tokens.length ? 1 : 0))),
    advantages: rows.map((r) => r.advantage),
    group: rows.map((r) => r.group),
    withPolicy: rows.map((r) => r.withPolicy),
  };
}
