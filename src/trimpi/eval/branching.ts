// Branching errors: which conditions the responses visit against those the gold CoTs visit. A model
// that stops early, skips a branch or wanders into extra conditions shows up here even when its
// final case happens to be right.
import { citedIds } from './referral.js';

/** The distribution of referenced condition ids in responses against the gold CoTs'. */
export interface BranchingResult {
  n: number;
  /** Per condition id (or rule number, ToolPolicy): how many responses / gold CoTs reference it. */
  byId: Record<string, { response: number; gold: number }>;
  /** Per number of referenced ids: how many responses / gold CoTs reference that many. */
  byCount: Record<string, { response: number; gold: number }>;
  /** Mean over items of |ids referenced by the response − ids referenced by the gold CoT|. */
  meanAbsDiff: number;
  /** Mean number of ids referenced by the responses and by the gold CoTs. */
  meanResponse: number;
  meanGold: number;
  /** Share of items whose response visits exactly the gold sequence of ids. */
  samePath: number;
}

/**
 * Compares the ids each response references with its gold CoT's (docs/referral.md, "branching"):
 * the distribution per id and per count, the mean absolute difference of the counts, and the share
 * of identical paths.
 */
export function branchingErrors(pairs: readonly { response: string; gold: string }[]): BranchingResult {
  const byId: BranchingResult['byId'] = {};
  const byCount: BranchingResult['byCount'] = {};
  let absDiff = 0, sumResponse = 0, sumGold = 0, same = 0;
  for (const { response, gold } of pairs) {
    const r = citedIds(response);
    const g = citedIds(gold);
    for (const id of new Set(r)) (byId[id] ??= { response: 0, gold: 0 }).response++;
    for (const id of new Set(g)) (byId[id] ??= { response: 0, gold: 0 }).gold++;
    (byCount[r.length] ??= { response: 0, gold: 0 }).response++;
    (byCount[g.length] ??= { response: 0, gold: 0 }).gold++;
    absDiff += Math.abs(r.length - g.length);
    sumResponse += r.length;
    sumGold += g.length;
    if (r.join(' ') === g.join(' ')) same++;
  }
  const n = pairs.length;
  const sortedIds = Object.keys(byId).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  return {
    n, byId: Object.fromEntries(sortedIds.map((k) => [k, byId[k]])), byCount,
    meanAbsDiff: n ? absDiff / n : 0, meanResponse: n ? sumResponse / n : 0, meanGold: n ? sumGold / n : 0, samePath: n ? same / n : 0,
  };
}
