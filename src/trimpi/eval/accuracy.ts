// End-to-end accuracy on a setting's held-out test split, with or without the policy in context,
// batched greedy generation with the KV cache; and the baselines printed beside every accuracy.
import { generate } from '../../nn/generate.js';
import type { VisionLanguageModel } from '../../nn/vlm.js';
import { EOS, Tokenizer } from '../data/tokenizer.js';
import { naturalCaseFrequencies } from '../data/clevr_policy.js';
import { policyOfRecord } from '../data/export.js';
import type { MpiData, MpiRecord } from '../stages/mpi_data.js';

/** One test record's output and score. */
export interface AccuracyItem {
  id: string;
  policy: string;
  score: number;
  format: number;
  output: string;
}

/** Accuracy of a model on a test split, with prompt sizes, timing and every output. */
export interface AccuracyResult {
  /** Mean score (clevr: exact case match; tool: 0.5·tool + 0.5·arguments). */
  accuracy: number;
  /** Share of well-formed outputs. */
  format: number;
  n: number;
  withPolicy: boolean;
  perPolicy: Record<string, number>;
  /** Mean generated tokens. */
  responseTokens: number;
  /** Mean prompt tokens (text; images count one `<image>` each) and prompt positions (images expanded). */
  promptTokens: number;
  promptPositions: number;
  seconds: number;
  items: AccuracyItem[];
}

/** Which prompt (with or without the policy), how long, how batched, how many records. */
export interface AccuracyOptions {
  withPolicy: boolean;
  maxNewTokens: number;
  /** Prompts per generate() call (default 32). */
  batchSize?: number;
  /** Evaluate the first n test records only. */
  limit?: number;
}

/** Greedy accuracy of `model` on the test split of `data`. */
export async function evaluateAccuracy(model: VisionLanguageModel, tok: Tokenizer, data: MpiData, o: AccuracyOptions): Promise<AccuracyResult> {
  const records: MpiRecord[] = o.limit ? data.test.slice(0, o.limit) : data.test;
  const bs = o.batchSize ?? 32;
  const items: AccuracyItem[] = [];
  let promptTokens = 0, promptPositions = 0, responseTokens = 0;
  const t0 = performance.now();
  for (let i = 0; i < records.length; i += bs) {
    const chunk = records.slice(i, i + bs);
    const prompts = chunk.map((r) => data.prompt(r, o.withPolicy));
    const ids = prompts.map((p) => tok.encode(p.prompt));
    const images = data.imageTensor(prompts.flatMap((p) => p.images));
    try {
      const res = await generate(model, ids, images, { maxNewTokens: o.maxNewTokens, temperature: 0, eosId: EOS });
      chunk.forEach((r, k) => {
        const output = tok.decode(res.tokens[k]);
        const s = data.score(r, output);
        items.push({ id: r.id, policy: r.policy, score: s.score, format: s.format, output });
        promptTokens += ids[k].length;
        promptPositions += model.layout(ids[k]).ids.length;
        responseTokens += res.tokens[k].length;
      });
    } finally {
      images?.dispose();
    }
  }
  const n = items.length;
  const perPolicy: Record<string, number> = {};
  const counts: Record<string, number> = {};
  for (const it of items) {
    perPolicy[it.policy] = (perPolicy[it.policy] ?? 0) + it.score;
    counts[it.policy] = (counts[it.policy] ?? 0) + 1;
  }
  for (const k of Object.keys(perPolicy)) perPolicy[k] /= counts[k];
  const mean = (f: (it: AccuracyItem) => number): number => (n ? items.reduce((s, it) => s + f(it), 0) / n : 0);
  return {
    accuracy: mean((it) => it.score), format: mean((it) => it.format), n, withPolicy: o.withPolicy, perPolicy,
    responseTokens: n ? responseTokens / n : 0, promptTokens: n ? promptTokens / n : 0, promptPositions: n ? promptPositions / n : 0,
    seconds: (performance.now() - t0) / 1000, items,
  };
}

/** The baselines printed beside every accuracy. */
export interface Baselines {
  /** Answering each policy's most frequent test case (clevr), or the most frequent tool name with no arguments (tool). */
  majority: number;
  /**
   * clevr: answering each policy's most frequent case under natural sampling (random scenes, see
   * naturalCaseFrequencies), which the case-balanced test split does not show: the paper's data is
   * not balanced, so its majority baseline is this one. tool: equal to `majority`.
   */
  naturalMajority: number;
  /** Answering a uniformly random case of the policy (clevr: mean 1/cases). */
  random: number;
}

/** Baselines of a test split (clevr only; tool: majority tool with its score, random over tools). */
export function baselines(data: MpiData): Baselines {
  const test = data.test;
  if (test.length === 0) return { majority: 0, naturalMajority: 0, random: 0 };
  let majority = 0;
  let natural = 0;
  let random = 0;
  const byPolicy = new Map<string, MpiRecord[]>();
  for (const r of test) byPolicy.set(r.policy, [...(byPolicy.get(r.policy) ?? []), r]);
  for (const [, rs] of byPolicy) {
    const counts = new Map<string, number>();
    for (const r of rs) {
      const key = r.task === 'clevr' ? String(r.case) : r.target.name;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    const top = Math.max(...counts.values());
    const first = rs[0];
    // tool: a right tool name with wrong arguments scores 0.5
    majority += first.task === 'clevr' ? top : top * 0.5;
    natural += first.task === 'clevr' ? rs.length * Math.max(...naturalCaseFrequencies(policyOfRecord(data.policyOf(first)), { seed: data.spec.seed })) : top * 0.5;
    random += first.task === 'clevr' ? rs.length / data.policyOf(first).cases : (rs.length * 0.5) / Math.max(1, counts.size);
  }
  return { majority: majority / test.length, naturalMajority: natural / test.length, random: random / test.length };
}
