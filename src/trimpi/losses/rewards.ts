// The rule-based reward: accuracy of the \boxed{} answer plus a format bonus (verl's default
// 0.9·acc + 0.1·format for boxed-answer tasks).
import { check } from '../../gpu/errors.js';
import { BOX, boxContent, lastBoxed } from '../data/boxed.js';

// the project's one \boxed{} extractor (braces inside JSON strings skipped), shared with the scorers
export { lastBoxed };

/** Trims and collapses runs of whitespace: the only normalization before the exact match. */
export function normalizeAnswer(s: string): string {
  return s.trim().replace(/\s+/g, ' ');
}

/** 1 if the last boxed answer equals the gold answer exactly (after normalizeAnswer), else 0. */
export function accuracyReward(response: string, gold: string): number {
  const answer = lastBoxed(response);
  return answer !== null && normalizeAnswer(answer) === normalizeAnswer(gold) ? 1 : 0;
}

/**
 * 1 if the response is one `<think> … </think>` block followed by one `\boxed{…}` and nothing else
 * (surrounding whitespace allowed), else 0.
 */
export function formatReward(response: string): number {
  const s = response.trim();
  const head = /^<think>((?!<\/?think>)[\s\S])*<\/think>\s*/.exec(s);
  if (!head || !s.startsWith(BOX, head[0].length)) return 0;
  const box = boxContent(s, head[0].length + BOX.length);
  return box !== null && box.end === s.length ? 1 : 0;
}

/** Options of computeReward. */
export interface RewardOptions {
  /** w in R = (1 − w)·accuracy + w·format; default 0.1. */
  formatWeight?: number;
  /** The accuracy score in [0, 1] of a response against the gold answer; default accuracyReward (exact match). */
  accuracy?: (response: string, gold: string) => number;
}

/** What computeReward returns: reward = (1 − w)·accuracy + w·format, accuracy in [0, 1], format 0 or 1. */
export interface Reward {
  reward: number;
  accuracy: number;
  format: number;
  /** The parsed answer (last box), for logging. */
  answer: string | null;
}

/** R = (1 − w)·accuracy + w·format, w = 0.1 by default. */
export function computeReward(response: string, gold: string, opts: RewardOptions = {}): Reward {
  const w = opts.formatWeight ?? 0.1;
  check(w >= 0 && w <= 1, 'computeReward', () => `formatWeight must be in [0, 1], got ${w}`);
  const accuracy = (opts.accuracy ?? accuracyReward)(response, gold);
  const format = formatReward(response);
  return { reward: (1 - w) * accuracy + w * format, accuracy, format, answer: lastBoxed(response) };
}
